//! Read-your-writes: a read carrying `minPosition` waits until the projection's checkpoint
//! reaches it, up to [`MAX_WAIT`], then answers 503 `UNAVAILABLE`.

use api::{ApiError, ErrorCode};
use sqlx::AnyPool;
use std::time::Duration;

pub const MAX_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

pub async fn until(pool: &AnyPool, min_position: Option<u64>) -> Result<(), ApiError> {
    let Some(min) = min_position.filter(|m| *m > 0) else {
        return Ok(());
    };
    let min = i64::try_from(min).unwrap_or(i64::MAX);
    let deadline = tokio::time::Instant::now() + MAX_WAIT;
    loop {
        let names: Vec<&str> = projector::registry::read_models().collect();
        let sql = format!(
            "SELECT COUNT(*) FROM projection_checkpoints WHERE last_position >= $1 AND projection IN ({})",
            readstore::placeholders(2, names.len())
        );
        let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(min);
        for name in &names {
            query = query.bind(name);
        }
        let (caught_up,): (i64,) = query.fetch_one(pool).await.map_err(ApiError::unavailable)?;
        if usize::try_from(caught_up).is_ok_and(|n| n == names.len()) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "Read models have not caught up with minPosition yet",
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The `minPosition` query parameter, if given.
pub fn min_position(
    params: &std::collections::HashMap<String, String>,
) -> Result<Option<u64>, ApiError> {
    params
        .get("minPosition")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid_input("minPosition must be a non-negative integer"))
        })
        .transpose()
}
