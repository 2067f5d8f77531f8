//! The table of a JS thread's open handles, and the one place a handle id is decoded.
//!
//! A handle id is the slot index in its low 16 bits and the slot's generation in its high 16.
//! Each new occupant of a slot takes the next generation, so an id that was closed never
//! names a later handle in its slot: a slot whose generation would wrap is retired (never
//! used again) instead of reusing an id. A thread may so open and close 65,535 × 65,535
//! handles, one at a time, before opening fails with `TooManyHandles`.

/// Most slots (and so most handles open at once) per thread.
pub const MAX_SLOTS: usize = 0xffff;

struct Slot<T> {
    /// The generation of the current (or last) occupant; 0 before the first.
    generation: u16,
    value: Option<T>,
}

impl<T> Slot<T> {
    /// Free, and a new occupant would not wrap the generation around to an id already given.
    fn reusable(&self) -> bool {
        self.value.is_none() && self.generation < u16::MAX
    }
}

pub struct HandleTable<T> {
    slots: Vec<Slot<T>>,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        HandleTable { slots: Vec::new() }
    }
}

/// The slot index and generation of an id.
fn decode(id: u32) -> (usize, u16) {
    ((id & 0xffff) as usize, (id >> 16) as u16)
}

impl<T> HandleTable<T> {
    /// The value behind `id`, if that id is open.
    pub fn get(&self, id: u32) -> Option<&T> {
        let (index, generation) = decode(id);
        match self.slots.get(index) {
            Some(slot) if slot.generation == generation => slot.value.as_ref(),
            _ => None,
        }
    }

    /// Stores `value` under a new id; gives it back when no slot is left.
    pub fn insert(&mut self, value: T) -> Result<u32, T> {
        let index = match self.slots.iter().position(Slot::reusable) {
            Some(i) => i,
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
            None => return Err(value),
        };
        let slot = &mut self.slots[index];
        slot.generation += 1;
        slot.value = Some(value);
        Ok(((slot.generation as u32) << 16) | index as u32)
    }

    /// Takes the value behind `id` out; `None` when that id is not open (closed already).
    pub fn remove(&mut self, id: u32) -> Option<T> {
        let (index, generation) = decode(id);
        match self.slots.get_mut(index) {
            Some(slot) if slot.generation == generation => slot.value.take(),
            _ => None,
        }
    }

    /// Every open value, emptying the table.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.slots.iter_mut().filter_map(|slot| slot.value.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_id_never_names_a_later_handle_even_after_its_slot_generation_runs_out() {
        let mut table = HandleTable::default();
        let mut seen = std::collections::HashSet::new();
        // Open and close one handle at a time: every one lands in slot 0 until its
        // generations are used up; the next goes to slot 1 instead of wrapping around.
        let first = table.insert(0u32).unwrap();
        assert_eq!(table.remove(first), Some(0));
        seen.insert(first);
        for n in 1..u16::MAX as u32 {
            let id = table.insert(n).unwrap();
            assert_eq!(id & 0xffff, 0, "slot 0 while it has generations left");
            assert!(seen.insert(id), "id {id:#x} given twice");
            assert_eq!(table.get(first), None, "a closed id stays closed");
            assert_eq!(table.remove(id), Some(n));
        }
        let next = table.insert(7).unwrap();
        assert_eq!(next & 0xffff, 1, "slot 0 retired rather than wrapped");
        assert!(seen.insert(next));
        for old in [first, first | 0xffff_0000, 0] {
            assert_eq!(table.get(old), None);
            assert_eq!(table.remove(old), None);
        }
        assert_eq!(table.get(next), Some(&7));
    }

    #[test]
    fn ids_of_open_handles_are_distinct_and_the_table_is_bounded() {
        let mut table = HandleTable::default();
        let ids: Vec<u32> = (0..MAX_SLOTS).map(|n| table.insert(n).unwrap()).collect();
        assert_eq!(table.insert(usize::MAX), Err(usize::MAX), "full");
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(table.get(*id), Some(&n));
        }
        // A closed slot is reused under a new id; the old one stays closed.
        assert_eq!(table.remove(ids[5]), Some(5));
        assert_eq!(table.remove(ids[5]), None, "closing twice does nothing");
        let again = table.insert(99).unwrap();
        assert_eq!(again & 0xffff, 5);
        assert_ne!(again, ids[5]);
        assert_eq!(table.get(ids[5]), None);
        assert_eq!(table.drain().count(), MAX_SLOTS);
        assert_eq!(table.get(again), None);
    }
}
