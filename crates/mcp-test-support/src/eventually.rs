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
