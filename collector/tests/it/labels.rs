//! Labels follow async tasks across tokio worker threads and never leak
//! into other tasks.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use flameshift_collector::labels::{current, enter, intern, labeled, resolve, LabelSet};

#[test]
fn every_poll_of_every_task_sees_its_own_labels_on_any_worker() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let threads_per_task: Arc<Mutex<Vec<usize>>> = Arc::default();
    runtime.block_on(async {
        let mut handles = Vec::new();
        for task in 0..64 {
            let threads_per_task = threads_per_task.clone();
            let endpoint = format!("GET /t/{task}");
            handles.push(tokio::spawn(labeled(
                [("endpoint", endpoint.clone())],
                async move {
                    let mut threads = HashSet::new();
                    for _ in 0..200 {
                        let set = resolve(current());
                        assert_eq!(
                            set.get("endpoint"),
                            Some(endpoint.as_str()),
                            "labels leaked or lost"
                        );
                        threads.insert(format!("{:?}", std::thread::current().id()));
                        tokio::task::yield_now().await;
                    }
                    threads_per_task.lock().unwrap().push(threads.len());
                },
            )));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let counts = threads_per_task.lock().unwrap();
    assert_eq!(counts.len(), 64);
    assert!(
        counts.iter().any(|&n| n > 1),
        "some task moved between workers: {counts:?}"
    );
    // Outside any labeled future, the worker threads are clean again.
    assert!(resolve(current()).is_empty());
}

#[test]
fn a_future_moved_to_another_thread_keeps_its_labels_there() {
    // Deterministic migration: poll on one thread, then on another.
    let waker = std::task::Waker::noop();
    let mut future = Box::pin(labeled([("endpoint", "GET /moved")], async {
        let first = resolve(current()).get("endpoint").map(str::to_owned);
        tokio::task::yield_now().await;
        let second = resolve(current()).get("endpoint").map(str::to_owned);
        (first, second, std::thread::current().id())
    }));
    let mut cx = std::task::Context::from_waker(waker);
    assert!(std::future::Future::poll(future.as_mut(), &mut cx).is_pending());
    assert!(
        resolve(current()).is_empty(),
        "nothing left behind on the first thread"
    );
    let here = std::thread::current().id();
    let (first, second, there) = std::thread::spawn(move || {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(future.as_mut(), &mut cx) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => panic!("should be done"),
        }
    })
    .join()
    .unwrap();
    assert_ne!(here, there);
    assert_eq!(first.as_deref(), Some("GET /moved"));
    assert_eq!(second.as_deref(), Some("GET /moved"));
}

#[test]
fn nested_labels_extend_the_outer_set_and_win_on_equal_keys() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(labeled([("endpoint", "GET /a"), ("region", "eu")], async {
        labeled([("region", "us"), ("flag", "on")], async {
            let set = resolve(current());
            let pairs: Vec<(&str, &str)> = set.iter().collect();
            assert_eq!(
                pairs,
                vec![("endpoint", "GET /a"), ("flag", "on"), ("region", "us")]
            );
        })
        .await;
        assert_eq!(
            resolve(current()).get("region"),
            Some("eu"),
            "inner labels end with the inner future"
        );
    }));
}

#[test]
fn a_panicking_poll_restores_the_previous_labels() {
    let outer = intern(LabelSet::new([("endpoint", "outer")]));
    let _entered = enter(outer);
    let result = std::panic::catch_unwind(|| {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut future = std::pin::pin!(labeled([("endpoint", "inner")], async { panic!("boom") }));
        let _ = std::future::Future::poll(future.as_mut(), &mut cx);
    });
    assert!(result.is_err());
    assert_eq!(current(), outer);
}
