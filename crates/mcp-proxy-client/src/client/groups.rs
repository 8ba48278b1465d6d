//! Groups (`/admin/groups`): one MCP endpoint over several upstreams.

use mcp_types::GroupDefinition;
use reqwest::Method;
use serde_json::Value;

use super::{ProxyClient, http};
use crate::error::Error;
use crate::model::{GroupEntry, Listing, ToolInfo};
use crate::retry::Safety;

impl ProxyClient {
    /// `POST /admin/groups`: creates a group. [`Error::AlreadyExists`] when a group or an
    /// upstream has the name (they share one namespace); [`Error::Invalid`] names every
    /// failing field. Retried only when it cannot have been applied.
    pub async fn create_group(&self, group: &GroupDefinition) -> Result<GroupEntry, Error> {
        let body = super::encode("POST /admin/groups", "group", group)?;
        self.call(
            Safety::AnsweredOrUnsent,
            Method::POST,
            &["admin", "groups"],
            Some(body),
        )
        .await
    }

    /// `PUT /admin/groups/{name}`: replaces a group (live: its sessions carry on unless
    /// its auth fields changed). [`Error::NotFound`] when absent.
    pub async fn update_group(&self, group: &GroupDefinition) -> Result<GroupEntry, Error> {
        let body = super::encode(&format!("PUT /admin/groups/{}", group.name), "group", group)?;
        self.call(
            Safety::Idempotent,
            Method::PUT,
            &["admin", "groups", &group.name],
            Some(body),
        )
        .await
    }

    /// `DELETE /admin/groups/{name}`: `true` when it was removed, `false` when it was not
    /// there (not an error).
    pub async fn delete_group(&self, name: &str) -> Result<bool, Error> {
        self.delete_at(&["admin", "groups", name]).await
    }

    /// `GET /admin/groups/{name}`.
    pub async fn group(&self, name: &str) -> Result<GroupEntry, Error> {
        self.call(
            Safety::Idempotent,
            Method::GET,
            &["admin", "groups", name],
            None,
        )
        .await
    }

    /// `GET /admin/groups`: every group, the built-in `mcp` included.
    pub async fn groups(&self) -> Result<Vec<GroupEntry>, Error> {
        let op = "GET /admin/groups";
        let mut body: Value = self
            .call(Safety::Idempotent, Method::GET, &["admin", "groups"], None)
            .await?;
        http::decode_value(op, body["groups"].take())
    }

    /// `GET /admin/tools?group=NAME`: the group's merged tools, each with its member
    /// (`mcp_name`) and, in `extra`, its `originalName`.
    pub async fn group_tools(&self, name: &str) -> Result<Listing<ToolInfo>, Error> {
        let mut url = self.url(&["admin", "tools"]);
        url.query_pairs_mut().append_pair("group", name);
        let op = format!("GET {}?group={name}", url.path());
        let bytes = self
            .send_to(
                &self.retry,
                Safety::Idempotent,
                Method::GET,
                url,
                true,
                None,
            )
            .await?;
        let mut body: Value = http::decode(&op, &bytes)?;
        Ok(Listing {
            items: http::decode_value(&op, body["tools"].take())?,
            errors: http::decode_value(&op, body["errors"].take())?,
        })
    }
}
