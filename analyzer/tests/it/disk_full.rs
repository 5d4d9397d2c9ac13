//! A full disk: uploads get 507 and leave no partial record; every
//! acknowledged upload survives a restart. Uses a small tmpfs (the tests
//! run as root on the CI machine, as everything here does).

use std::process::Command;

use super::*;

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root (CAP_SYS_ADMIN)");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// A profile of about `names` distinct, incompressible function names.
fn bulky(seed: u64, names: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let functions: Vec<String> = (0..names)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            format!("f{state:016x}{:016x}", state.rotate_left(29))
        })
        .collect();
    let stacks: Vec<[&str; 1]> = functions.iter().map(|f| [f.as_str()]).collect();
    let samples: Vec<S<'_>> = stacks
        .iter()
        .map(|f| S {
            stack: f,
            labels: &[],
            count: 1,
            ns: 1,
        })
        .collect();
    pprof(&samples)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_keeps_what_was_acknowledged() {
    let disk = Tmpfs::mount("1536k");
    let data = disk.0.path().join("data");
    let server = TestServer::on(&data).await;
    let mut acknowledged = 0;
    let mut full = false;
    for seed in 0..200 {
        let (status, answer) = post(
            &format!("{}/api/v1/profiles?service=big&deploy=v1", server.url),
            bulky(seed, 2_000),
        )
        .await;
        match status {
            200 => acknowledged += 1,
            507 => {
                assert!(
                    answer["error"].as_str().unwrap().contains("no space left"),
                    "{answer}"
                );
                full = true;
                break;
            }
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert!(full, "the disk never filled");
    assert!(acknowledged > 0);
    let (_, top) = get(&format!("{}/api/v1/functions?service=big&limit=1", server.url)).await;
    assert_eq!(top["samples"], acknowledged * 2_000);
    // The shutdown flush cannot write Parquet on a full disk; the log
    // still holds everything acknowledged.
    let _ = tokio::time::timeout(Duration::from_secs(30), server.stop_allowing_errors()).await;
    let reopened = DiskStore::open(StoreConfig::new(&data)).unwrap();
    let sel = flameshift_analyzer::store::Selection {
        service: "big".into(),
        ..Default::default()
    };
    let top = flameshift_analyzer::query::top_functions(
        &reopened,
        &sel,
        flameshift_analyzer::query::TopOrder::SelfCost,
        1,
    )
    .unwrap();
    assert_eq!(
        top.samples,
        acknowledged * 2_000,
        "exactly the acknowledged uploads, no partial one"
    );
    assert_eq!(
        reopened.stats().corrupt_on_start,
        0,
        "no torn record was left in the log"
    );
}
