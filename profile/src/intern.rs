//! A generic interner: each distinct value is stored once and named by a
//! dense `u32` id, in insertion order.

use std::borrow::Borrow;
use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Stores each distinct value once; ids are dense and assigned in order.
#[derive(Debug, Clone)]
pub struct Interner<T> {
    items: Vec<T>,
    index: FxHashMap<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            items: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    /// Returns the id of `key`, storing it first if it is new.
    pub fn intern<Q>(&mut self, key: &Q) -> u32
    where
        Q: ?Sized + Hash + Eq,
        T: Borrow<Q> + for<'a> From<&'a Q>,
    {
        if let Some(&id) = self.index.get(key) {
            return id;
        }
        self.insert_new(T::from(key))
    }

    /// Returns the id of `value`, storing it first if it is new.
    pub fn intern_owned(&mut self, value: T) -> u32 {
        if let Some(&id) = self.index.get(&value) {
            return id;
        }
        self.insert_new(value)
    }

    fn insert_new(&mut self, value: T) -> u32 {
        let id = u32::try_from(self.items.len()).expect("more than 2^32 interned values");
        self.items.push(value.clone());
        self.index.insert(value, id);
        id
    }

    /// The id of `key` if it was interned.
    pub fn lookup<Q>(&self, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Hash + Eq,
        T: Borrow<Q>,
    {
        self.index.get(key).copied()
    }
}

impl<T> Interner<T> {
    /// The value with this id. Panics if the id was not handed out by this interner.
    pub fn get(&self, id: u32) -> &T {
        &self.items[id as usize]
    }

    /// How many distinct values are stored.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All values in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &T> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_id_and_ids_are_dense() {
        let mut strings: Interner<Box<str>> = Interner::default();
        let a = strings.intern("a");
        let b = strings.intern("b");
        assert_eq!(strings.intern("a"), a);
        assert_eq!((a, b), (0, 1));
        assert_eq!(&**strings.get(b), "b");
        assert_eq!(strings.lookup("c"), None);
        assert_eq!(strings.len(), 2);
    }
}
