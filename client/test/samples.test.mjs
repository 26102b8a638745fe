// Every JSON sample the Rust golden tests write (wire/) is checked by test/wire-check.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';

test('wire-check.ts imports every sample of wire/', () => {
  const check = readFileSync(new URL('./wire-check.ts', import.meta.url), 'utf8');
  const imported = [...check.matchAll(/from '\.\.\/wire\/(.+)\.json'/g)].map((m) => m[1]).sort();
  const samples = readdirSync(new URL('../wire/', import.meta.url)).map((f) => f.replace(/\.json$/, '')).sort();
  assert.deepEqual(imported, samples);
});
