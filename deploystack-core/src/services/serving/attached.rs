//! What a caller keeps with a cached [`Resolution`](super::Resolution).
//!
//! ## Why a slot for someone else's data?
//! A resolution of a `READY` deployment never changes, so neither does anything derived from
//! it alone — for the HTTP crate, the status, headers and (small) body of the answer to a
//! plain `GET`. Keeping that with the cached resolution means it is built once, lives exactly
//! as long as the answer it belongs to, and costs no second lookup. Core stays out of the
//! wire format: it stores an opaque [`Attachment`], counts its size against the cache's
//! budget, and never reads it.

use std::any::Any;
use std::sync::{Arc, OnceLock};

/// Data a caller derives from a resolution and keeps with it.
pub trait Attachment: Any + Send + Sync + std::fmt::Debug {
    /// Heap bytes it holds, counted against the resolution cache's budget.
    fn heap_bytes(&self) -> usize;
}

/// An empty or filled slot for one [`Attachment`]. Set once; the first caller to fill it
/// wins.
///
/// Equality ignores it: two resolutions that answer the same are equal whether or not
/// either has something attached yet.
#[derive(Debug, Clone, Default)]
pub struct Attached(OnceLock<Arc<dyn Attachment>>);

impl Attached {
    /// The attachment, if one of type `T` was attached.
    pub fn get<T: Attachment>(&self) -> Option<&T> {
        let attachment: &dyn Any = self.0.get()?.as_ref();
        attachment.downcast_ref()
    }

    /// The attachment of type `T`, attaching `init()` first if the slot is empty. `None` if
    /// the slot holds an attachment of another type.
    pub fn get_or_attach<T: Attachment>(&self, init: impl FnOnce() -> T) -> Option<&T> {
        let attachment: &dyn Any = self.0.get_or_init(|| Arc::new(init())).as_ref();
        attachment.downcast_ref()
    }

    /// Heap bytes of what is attached; 0 when nothing is.
    pub fn heap_bytes(&self) -> usize {
        self.0.get().map_or(0, |attachment| attachment.heap_bytes())
    }
}

impl PartialEq for Attached {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Attached {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Note(String);

    impl Attachment for Note {
        fn heap_bytes(&self) -> usize {
            self.0.len()
        }
    }

    #[derive(Debug)]
    struct Other;

    impl Attachment for Other {
        fn heap_bytes(&self) -> usize {
            0
        }
    }

    #[test]
    fn the_first_attachment_stays_and_is_counted() {
        let slot = Attached::default();
        assert!(slot.get::<Note>().is_none());
        assert_eq!(slot.heap_bytes(), 0);
        let first = slot.get_or_attach(|| Note("first".into())).unwrap();
        assert_eq!(first.0, "first");
        let again = slot.get_or_attach(|| Note("second".into())).unwrap();
        assert_eq!(again.0, "first");
        assert_eq!(slot.heap_bytes(), 5);
        assert!(slot.get::<Other>().is_none());
        assert!(slot.get_or_attach(|| Other).is_none());
    }
}
