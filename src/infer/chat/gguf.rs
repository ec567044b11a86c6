//! A bounds-checked walk over a GGUF file's header before candle reads it.
//!
//! candle's reader trusts the counts and lengths in the header; a corrupt or truncated file can
//! then ask for absurd allocations. This walk checks every count, length, type and tensor extent
//! against the file's size and reports the first problem as a [`Error::Model`] naming the file.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::GgmlDType;

use crate::error::{Error, Result};

const MAGIC: u32 = 0x4655_4747; // "GGUF" little-endian
const MAX_ENTRIES: u64 = 1 << 20;
const MAX_STRING: u64 = 1 << 26;

struct Walker<R> {
    r: R,
    pos: u64,
    size: u64,
}

impl<R: Read> Walker<R> {
    fn bytes(&mut self, n: u64) -> std::result::Result<Vec<u8>, String> {
        if self.pos + n > self.size {
            return Err(format!("truncated: needs {n} bytes at offset {} of {}", self.pos, self.size));
        }
        let mut buf = vec![0u8; n as usize];
        self.r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        self.pos += n;
        Ok(buf)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes(8)?.try_into().expect("8 bytes")))
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let n = self.u64()?;
        if n > MAX_STRING {
            return Err(format!("a string of {n} bytes at offset {}", self.pos));
        }
        String::from_utf8(self.bytes(n)?).map_err(|_| format!("a string that is not UTF-8 before offset {}", self.pos))
    }
    fn skip_value(&mut self, ty: u32, depth: u8) -> std::result::Result<(), String> {
        let fixed = match ty {
            0 | 1 | 7 => 1,
            2 | 3 => 2,
            4..=6 => 4,
            10..=12 => 8,
            8 => {
                self.string()?;
                return Ok(());
            }
            9 => {
                if depth > 2 {
                    return Err("arrays nested too deep".into());
                }
                let inner = self.u32()?;
                let count = self.u64()?;
                if count > self.size {
                    return Err(format!("an array of {count} items in a file of {} bytes", self.size));
                }
                for _ in 0..count {
                    self.skip_value(inner, depth + 1)?;
                }
                return Ok(());
            }
            other => return Err(format!("unknown metadata value type {other}")),
        };
        self.bytes(fixed).map(|_| ())
    }
}

/// ggml's type numbers, as candle reads them.
fn dtype_of(ty: u32) -> Option<GgmlDType> {
    Some(match ty {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// Check that `path` is a well-formed GGUF file (header, metadata, tensor extents).
pub fn check_file(path: &Path) -> Result<()> {
    let fail = |why: String| Error::Model(format!("{} is not a valid GGUF file: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| Error::Model(format!("cannot open {}: {e}", path.display())))?;
    let size = file.metadata().map_err(|e| Error::Model(format!("{}: {e}", path.display())))?.len();
    let mut w = Walker { r: BufReader::new(file), pos: 0, size };
    let magic = w.u32().map_err(fail)?;
    if magic != MAGIC {
        return Err(fail(format!("wrong magic 0x{magic:08x} (expected 'GGUF')")));
    }
    let version = w.u32().map_err(fail)?;
    if !(2..=3).contains(&version) {
        return Err(fail(format!("unsupported GGUF version {version}")));
    }
    let tensors = w.u64().map_err(fail)?;
    let kvs = w.u64().map_err(fail)?;
    if tensors > MAX_ENTRIES || kvs > MAX_ENTRIES {
        return Err(fail(format!("{tensors} tensors and {kvs} metadata entries")));
    }
    let mut alignment = 32u64;
    for _ in 0..kvs {
        let key = w.string().map_err(fail)?;
        let ty = w.u32().map_err(fail)?;
        if key == "general.alignment" && ty == 4 {
            alignment = w.u32().map_err(fail)? as u64;
            if alignment == 0 || !alignment.is_power_of_two() {
                return Err(fail(format!("alignment {alignment}")));
            }
        } else {
            w.skip_value(ty, 0).map_err(|e| fail(format!("metadata '{key}': {e}")))?;
        }
    }
    let mut extents = Vec::with_capacity(tensors as usize);
    for _ in 0..tensors {
        let name = w.string().map_err(fail)?;
        let dims = w.u32().map_err(fail)?;
        if dims == 0 || dims > 4 {
            return Err(fail(format!("tensor '{name}' has {dims} dimensions")));
        }
        let mut elements: u64 = 1;
        let mut first = 0;
        for d in 0..dims {
            let n = w.u64().map_err(fail)?;
            if d == 0 {
                first = n;
            }
            elements = elements
                .checked_mul(n)
                .filter(|&e| e <= size.saturating_mul(8))
                .ok_or_else(|| fail(format!("tensor '{name}' is too large")))?;
        }
        let ty = w.u32().map_err(fail)?;
        let dtype =
            dtype_of(ty).ok_or_else(|| fail(format!("tensor '{name}' has type {ty}, which aisle cannot read")))?;
        let block = dtype.block_size() as u64;
        if first % block != 0 {
            return Err(fail(format!("tensor '{name}': {first} is not a multiple of the block size {block}")));
        }
        let bytes = elements / block * dtype.type_size() as u64;
        let offset = w.u64().map_err(fail)?;
        extents.push((name, offset, bytes));
    }
    let data_start = w.pos.div_ceil(alignment) * alignment;
    for (name, offset, bytes) in extents {
        let end = data_start.checked_add(offset).and_then(|s| s.checked_add(bytes));
        if end.is_none_or(|e| e > size) {
            return Err(fail(format!("tensor '{name}' extends past the end of the file (truncated?)")));
        }
    }
    // The walk is done; the reader position is of no further use.
    let _ = w.r.seek(SeekFrom::Start(0));
    Ok(())
}
