//! The few HTTP exchanges with a Krake API server that tests and benchmarks outside the
//! API server's own harness repeat: create an object, read a list.

use serde_json::Value;

/// POST `body` to the collection `url`; the created object.
///
/// # Panics
/// When the request fails or the answer is not `200 OK` with a JSON body.
pub async fn create(client: &reqwest::Client, url: &str, body: &Value) -> Value {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    json_ok(response, "POST", url).await
}

/// GET `url`; the JSON body.
///
/// # Panics
/// When the request fails or the answer is not `200 OK` with a JSON body.
pub async fn get(client: &reqwest::Client, url: &str) -> Value {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    json_ok(response, "GET", url).await
}

/// The names of the items of a list body.
///
/// # Panics
/// When `list` has no `items` array or an item has no name.
pub fn item_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| {
            item["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("item without a name: {item}"))
                .to_string()
        })
        .collect()
}

async fn json_ok(response: reqwest::Response, method: &str, url: &str) -> Value {
    let status = response.status();
    let body = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
    assert_eq!(status, reqwest::StatusCode::OK, "{method} {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {body}"))
}
