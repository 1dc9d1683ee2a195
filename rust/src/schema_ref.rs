//! A node of a tool's JSON Schema, shared without copying.
//!
//! The arguments writer keeps the schema of every value it has open (the object's, the array
//! items', a union branch's...). Holding those as owned `Value`s meant copying a subtree each
//! time a value opened, and the whole parameters schema each time a call started (tens of
//! thousands of instructions for a schema of a few properties). A [`SchemaRef`] is the
//! parameters document behind an `Arc` plus a pointer to one node inside it: cloning it is a
//! reference-count increment.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use serde_json::Value;

/// One node of an immutable JSON Schema document (the document is shared, never copied).
/// Dereferences to the node's [`Value`]; [`SchemaRef::root`] is the whole document (what
/// `$ref`s resolve against).
#[derive(Clone)]
pub struct SchemaRef {
    doc: Arc<Value>,
    /// Points into `*doc` (the root itself or a value nested in it).
    node: NonNull<Value>,
}

// SAFETY: a `SchemaRef` is an `Arc<Value>` plus a shared reference into that value. `Value` is
// `Send + Sync`, and nothing is ever mutated through either (the `Arc` is never unwrapped).
unsafe impl Send for SchemaRef {}
// SAFETY: as above.
unsafe impl Sync for SchemaRef {}

impl SchemaRef {
    /// The root node of `doc`.
    pub fn new(doc: Value) -> Self {
        let doc = Arc::new(doc);
        let node = NonNull::from(&*doc);
        SchemaRef { doc, node }
    }

    /// The whole document this node belongs to.
    pub fn root(&self) -> &Value {
        &self.doc
    }

    /// A node found from this one: `f` receives this node and the document root and returns
    /// a value inside them, or `None`.
    pub fn try_project(&self, f: impl for<'a> FnOnce(&'a Value, &'a Value) -> Option<&'a Value>) -> Option<SchemaRef> {
        // The closure must return a reference valid for any lifetime of its inputs, so it can
        // only point into them (or at a `'static` value): the pointer stays valid as long as
        // `doc` lives, which the new `SchemaRef` keeps alive.
        let node = f(self, &self.doc)?;
        Some(SchemaRef {
            doc: Arc::clone(&self.doc),
            node: NonNull::from(node),
        })
    }

    /// Like [`SchemaRef::try_project`] for a node that is always there.
    pub fn project(&self, f: impl for<'a> FnOnce(&'a Value, &'a Value) -> &'a Value) -> SchemaRef {
        let node = f(self, &self.doc);
        SchemaRef {
            doc: Arc::clone(&self.doc),
            node: NonNull::from(node),
        }
    }

    /// Several nodes found from this one (e.g. the branches of an `anyOf`).
    pub fn project_all(&self, f: impl for<'a> FnOnce(&'a Value, &'a Value) -> Vec<&'a Value>) -> Vec<SchemaRef> {
        f(self, &self.doc)
            .into_iter()
            .map(|node| SchemaRef {
                doc: Arc::clone(&self.doc),
                node: NonNull::from(node),
            })
            .collect()
    }
}

impl Deref for SchemaRef {
    type Target = Value;

    fn deref(&self) -> &Value {
        // SAFETY: `node` points into `*self.doc` (see the constructors), which this `Arc`
        // keeps alive and which is never mutated.
        unsafe { self.node.as_ref() }
    }
}

impl From<Value> for SchemaRef {
    fn from(doc: Value) -> Self {
        SchemaRef::new(doc)
    }
}

impl fmt::Debug for SchemaRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for SchemaRef {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projections_share_the_document_and_outlive_the_parent() {
        let root = SchemaRef::new(json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            "$defs": {"n": {"type": "integer"}}
        }));
        let a = root.try_project(|n, _| n.get("properties")?.get("a")).expect("a");
        let resolved = a.project(|n, r| crate::schema::resolve(n, r, 0));
        let branches = root
            .try_project(|n, _| n.get("properties")?.get("b"))
            .expect("b")
            .project_all(|n, _| n["anyOf"].as_array().map(|v| v.iter().collect()).unwrap_or_default());
        drop(root);
        assert_eq!(*resolved, json!({"type": "integer"}));
        assert_eq!(branches.len(), 2);
        assert_eq!(*branches[1], json!({"type": "null"}));
        assert_eq!(resolved.root()["$defs"]["n"], json!({"type": "integer"}));
        assert!(Arc::ptr_eq(&resolved.doc, &branches[0].doc));
        assert!(a.try_project(|n, _| n.get("missing")).is_none());
    }
}
