//! A watcher that stops reading is disconnected without slowing the others, and the
//! server's memory for it stays bounded (the watch cache's per-watcher buffer is finite).

use std::time::{Duration, Instant};

use krake_api_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{big_metric, open_watchers};

#[tokio::test]
async fn a_watcher_that_stops_reading_is_cut_off_and_others_keep_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_embedded(dir.path());
    config.watch_cache_events = 32;
    config.watch_send_timeout = Duration::from_secs(2);
    let server = krake_api_server::start(config).await.unwrap();
    let base = format!("http://{}", server.addr);
    let url = "/core/namespaces/ns/metrics?watch&heartbeat=0";

    // The stalled watcher: sends its request, reads the headers, then never reads again.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(format!("GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let mut reader = reqwest::get(format!("{base}{url}")).await.unwrap();
    assert_eq!(reader.status(), 200);
    assert_eq!(open_watchers(&base).await, 2.0);

    let total = 300;
    let client = reqwest::Client::new();
    let writer = {
        let base = base.clone();
        tokio::spawn(async move {
            for i in 0..total {
                let r = client
                    .post(format!("{base}/core/namespaces/ns/metrics"))
                    .json(&big_metric(&format!("m{i}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        })
    };

    // Held up would be a chunk that takes longer than the timeout: the reader must not
    // wait for the stalled watcher (a total time bound would only measure the machine).
    let mut received = 0;
    let mut buffer = Vec::new();
    while received < total {
        let chunk = tokio::time::timeout(Duration::from_secs(20), reader.chunk())
            .await
            .expect("the reading watcher was held up")
            .unwrap()
            .expect("the reading watcher was cut off");
        buffer.extend_from_slice(&chunk);
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            if line.len() > 1 {
                received += 1;
            }
        }
    }
    writer.await.unwrap();
    assert_eq!(received, total);

    // The stalled watcher is cut off from the fan-out...
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_watchers(&base).await != 1.0 {
        assert!(Instant::now() < deadline, "open_watchers did not drop to 1");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and its response ends: draining the socket reaches the end of the stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sink = vec![0u8; 1 << 16];
    let mut drained = 0usize;
    loop {
        assert!(Instant::now() < deadline, "stalled watcher still connected");
        match tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => drained += n,
            Err(_) => continue,
        }
    }
    // It got far fewer than all events: it was disconnected, not served in full.
    assert!(
        drained < total * 80 * 1024,
        "stalled watcher received everything ({drained} bytes)"
    );
}
