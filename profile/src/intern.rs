//! A generic interner: each distinct value is stored once and named by a
//! dense `u32` id, in insertion order.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Stores each distinct value once; ids are dense and assigned in order.
///
/// Values live only in the `items` vector; the hash table holds their ids,
/// so each value is allocated once.
#[derive(Clone)]
pub struct Interner<T> {
    items: Vec<T>,
    table: HashTable<u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            items: Vec::new(),
            table: HashTable::new(),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// Returns the id of `key`, storing it first if it is new.
    pub fn intern<Q>(&mut self, key: &Q) -> u32
    where
        Q: ?Sized + Hash + Eq,
        T: Borrow<Q> + for<'a> From<&'a Q>,
    {
        let hash = FxBuildHasher.hash_one(key);
        if let Some(&id) = self
            .table
            .find(hash, |&id| self.items[id as usize].borrow() == key)
        {
            return id;
        }
        self.insert_new(hash, T::from(key))
    }

    /// Returns the id of `value`, storing it first if it is new.
    pub fn intern_owned(&mut self, value: T) -> u32 {
        let hash = FxBuildHasher.hash_one(&value);
        if let Some(&id) = self.table.find(hash, |&id| self.items[id as usize] == value) {
            return id;
        }
        self.insert_new(hash, value)
    }

    fn insert_new(&mut self, hash: u64, value: T) -> u32 {
        let id = u32::try_from(self.items.len()).expect("more than 2^32 interned values");
        self.items.push(value);
        let items = &self.items;
        // `Borrow` promises that `T` and `Q` hash alike, so rehashing by
        // the stored value agrees with lookups by the borrowed key.
        self.table
            .insert_unique(hash, id, |&id| FxBuildHasher.hash_one(&items[id as usize]));
        id
    }

    /// Makes room for `additional` more values without rehashing.
    pub fn reserve(&mut self, additional: usize) {
        self.items.reserve(additional);
        let items = &self.items;
        self.table
            .reserve(additional, |&id| FxBuildHasher.hash_one(&items[id as usize]));
    }

    /// The id of `key` if it was interned.
    pub fn lookup<Q>(&self, key: &Q) -> Option<u32>
    where
        Q: ?Sized + Hash + Eq,
        T: Borrow<Q>,
    {
        let hash = FxBuildHasher.hash_one(key);
        self.table
            .find(hash, |&id| self.items[id as usize].borrow() == key)
            .copied()
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

    #[test]
    fn borrowed_and_owned_lookups_agree_after_growth() {
        let mut stacks: Interner<Box<[u32]>> = Interner::default();
        for i in 0..10_000u32 {
            assert_eq!(stacks.intern(&[i, i + 1][..]), i);
        }
        for i in (0..10_000u32).rev() {
            assert_eq!(stacks.intern_owned(vec![i, i + 1].into_boxed_slice()), i);
            assert_eq!(stacks.lookup(&[i, i + 1][..]), Some(i));
        }
        assert_eq!(stacks.len(), 10_000);
    }
}
