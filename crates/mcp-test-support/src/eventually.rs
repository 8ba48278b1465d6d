//! Polling assertions.

/// Polls an async condition every 25 ms until it returns `true`, or panics after the
/// timeout (default 10 s) with the condition's text.
///
/// ```ignore
/// assert_eventually!(store.get("a").await.unwrap().is_some());
/// assert_eventually!(Duration::from_secs(2), status().await == "connected");
/// ```
#[macro_export]
macro_rules! assert_eventually {
    ($timeout:expr, $cond:expr) => {{
        let deadline = ::std::time::Instant::now() + $timeout;
        loop {
            if $cond {
                break;
            }
            if ::std::time::Instant::now() >= deadline {
                panic!(
                    "condition not met within {:?}: {}",
                    $timeout,
                    stringify!($cond)
                );
            }
            ::tokio::time::sleep(::std::time::Duration::from_millis(25)).await;
        }
    }};
    ($cond:expr) => {
        $crate::assert_eventually!(::std::time::Duration::from_secs(10), $cond)
    };
}

/// Polls `probe` every `every` until it yields a value, which it returns; after `within`
/// it panics with `what` and the last thing `probe` reported. The counterpart of
/// [`assert_eventually!`](crate::assert_eventually) for waits that return something or
/// that have more to say on failure than the condition's text.
pub async fn eventually<T, F, Fut>(
    within: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}
