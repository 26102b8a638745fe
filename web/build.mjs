// Builds dist/: the app and the operator page bundled by esbuild (with @chat/client from
// ../client/src), and the static files copied as they are. dist/ is committed: `chat serve`
// embeds it, so a Rust toolchain alone serves the app. scripts/test.sh rebuilds it and fails
// when the result differs from what is committed.
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
cpSync('static', 'dist', { recursive: true });
await build({
  entryPoints: { app: 'src/app.ts', ops: 'src/ops.ts' },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  outdir: 'dist',
  logLevel: 'warning',
});
