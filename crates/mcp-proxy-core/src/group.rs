//! Groups ("virtual servers"): one MCP endpoint over several upstreams. The merged
//! catalog lives in [`catalog`]; client sessions on a group open one link per member,
//! when they first need it.

pub mod catalog;

pub use catalog::{Collision, Member, Merged, MergedCatalog, merge};
