//! AMX tiles exist only on x86-64; on other CPUs matrix products stay in
//! f32 and nothing here can be constructed.

/// Always false off x86-64.
pub fn available() -> bool {
    false
}

/// Packed weights; uninhabited off x86-64.
pub enum PackedWeights {}

impl PackedWeights {
    /// Never packs off x86-64.
    pub fn pack(_w: &[f32], _k: usize, _n: usize) -> Option<PackedWeights> {
        None
    }

    /// Cannot be called: no value of this type exists.
    pub fn matmul_acc(&self, _x: &[f32], _rows: usize, _out: &mut [f32]) {
        match *self {}
    }
}
