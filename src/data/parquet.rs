//! Parquet files in the layout of Hugging Face `datasets` (an `Image` struct column
//! `{bytes, path}` and a `ClassLabel` integer column), read with the row API of `parquet`
//! (no arrow) and decoded to an [`ImageSet`]. Reading fully is also the validation of a
//! download: a file that does not open, lacks the columns, or holds an undecodable image fails.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::convert;
use super::error::DataError;
use super::imageset::ImageSet;

/// One split read from parquet, with the class names found in the schema metadata.
#[derive(Debug, Clone)]
pub struct ParquetSplit {
    /// The images and labels.
    pub set: ImageSet,
    /// `features.<label>.names` from the `huggingface` schema metadata, when present.
    pub label_names: Option<Vec<String>>,
}

/// Which columns to read; `None` picks the first `{bytes}` struct / the `label` column.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    /// The image struct column.
    pub image: Option<&'a str>,
    /// The label column (a file without one gets label 0 everywhere when this is `None`).
    pub label: Option<&'a str>,
}

/// The encoded images and labels of one file, before decoding.
struct RawRows {
    encoded: Vec<Vec<u8>>,
    labels: Vec<u32>,
    names: Option<Vec<String>>,
}

/// Integer value of a label field.
fn field_to_label(f: &Field) -> Option<i64> {
    Some(match f {
        Field::Byte(v) => *v as i64,
        Field::Short(v) => *v as i64,
        Field::Int(v) => *v as i64,
        Field::Long(v) => *v,
        Field::UByte(v) => *v as i64,
        Field::UShort(v) => *v as i64,
        Field::UInt(v) => *v as i64,
        Field::ULong(v) => i64::try_from(*v).ok()?,
        _ => return None,
    })
}

/// Class names from the `huggingface` key-value metadata.
fn label_names_from_metadata(json: &str, label_col: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let names = v
        .pointer(&format!("/info/features/{label_col}/names"))?
        .as_array()?;
    names
        .iter()
        .map(|n| n.as_str().map(str::to_string))
        .collect()
}

/// Reads the rows of one parquet file.
fn read_rows(path: &Path, cols: Columns<'_>) -> Result<RawRows, DataError> {
    let bad = |reason: String| DataError::format(path, reason);
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad(format!("not a readable parquet file ({e})")))?;
    let meta = reader.metadata().file_metadata();
    let root = meta.schema_descr().root_schema();
    let fields = root.get_fields();
    let column_names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
    let has_bytes = |t: &parquet::schema::types::Type| {
        t.is_group() && t.get_fields().iter().any(|c| c.name() == "bytes")
    };
    let image_col = match cols.image {
        Some(name) if fields.iter().any(|f| f.name() == name && has_bytes(f)) => name.to_string(),
        _ => match fields.iter().find(|f| has_bytes(f)) {
            Some(f) => f.name().to_string(),
            None => {
                return Err(bad(format!(
                    "has no image column (a struct with 'bytes'); its columns are: {}",
                    column_names.join(", ")
                )))
            }
        },
    };
    let label_col = match cols.label {
        Some(name) if column_names.contains(&name) => Some(name.to_string()),
        Some(name) => {
            return Err(bad(format!(
                "has no label column '{name}'; its columns are: {}",
                column_names.join(", ")
            )))
        }
        None => column_names
            .iter()
            .find(|n| **n == "label" || **n == "labels")
            .map(|n| n.to_string()),
    };
    let names = label_col.as_deref().and_then(|lc| {
        meta.key_value_metadata()?
            .iter()
            .find(|kv| kv.key == "huggingface")
            .and_then(|kv| kv.value.as_deref())
            .and_then(|json| label_names_from_metadata(json, lc))
    });
    let expected = meta.num_rows().max(0) as usize;
    if expected == 0 {
        return Err(bad("holds no rows".to_string()));
    }
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| bad(format!("rows cannot be read ({e})")))?;
    let mut encoded = Vec::with_capacity(expected);
    let mut labels = Vec::with_capacity(expected);
    for (i, row) in iter.enumerate() {
        let row = row.map_err(|e| bad(format!("row {i} cannot be read ({e})")))?;
        let mut img = None;
        let mut label = if label_col.is_some() { None } else { Some(0) };
        for (name, field) in row.get_column_iter() {
            if *name == image_col {
                if let Field::Group(g) = field {
                    for (n, f) in g.get_column_iter() {
                        if n == "bytes" {
                            if let Field::Bytes(b) = f {
                                img = Some(b.data().to_vec());
                            }
                        }
                    }
                }
            } else if Some(name.as_str()) == label_col.as_deref() {
                label = field_to_label(field);
            }
        }
        let img = img.ok_or_else(|| {
            bad(format!(
                "row {i} has no image bytes in column '{image_col}'"
            ))
        })?;
        let label = match label {
            Some(l) if (0..=u32::MAX as i64).contains(&l) => l as u32,
            _ => {
                return Err(bad(format!(
                    "row {i} has no valid (non-negative integer) label"
                )))
            }
        };
        encoded.push(img);
        labels.push(label);
    }
    if labels.len() != expected {
        return Err(bad(format!(
            "footer announces {expected} rows but {} could be read: the file is truncated",
            labels.len()
        )));
    }
    Ok(RawRows {
        encoded,
        labels,
        names,
    })
}

/// Reads and decodes the shards of one split (in the order given) into one [`ImageSet`].
///
/// `channels`/`size` as in [`crate::data::LoadOptions`]: `None` keeps the images' own; without
/// `size`, all images must share the first image's size. Errors name the file (and row).
pub fn read_split(
    paths: &[PathBuf],
    cols: Columns<'_>,
    channels: Option<usize>,
    size: Option<usize>,
) -> Result<ParquetSplit, DataError> {
    let mut encoded = Vec::new();
    let mut labels = Vec::new();
    let mut names = None;
    let mut starts = Vec::new();
    for p in paths {
        let rows = read_rows(p, cols)?;
        starts.push((encoded.len(), p.clone()));
        encoded.extend(rows.encoded);
        labels.extend(rows.labels);
        names = names.or(rows.names);
    }
    let Some(first_path) = paths.first() else {
        return Err(DataError::format(PathBuf::new(), "no parquet file given"));
    };
    if let Some(s) = size {
        // The native channels are known only once decoded: count one (refuse only the sure).
        super::imageset::check_convert_fits(encoded.len(), channels.unwrap_or(1), s, s)?;
    }
    let refs: Vec<&[u8]> = encoded.iter().map(|v| v.as_slice()).collect();
    let (images, c, h, w) = convert::decode_all(&refs, channels, size).map_err(|f| {
        // The shard and row the failing image came from.
        let k = starts
            .partition_point(|(s, _)| *s <= f.index)
            .saturating_sub(1);
        let (start, path) = starts.get(k).cloned().unwrap_or((0, first_path.clone()));
        DataError::format(path, format!("row {}: {}", f.index - start, f.reason))
    })?;
    Ok(ParquetSplit {
        set: ImageSet {
            images,
            labels,
            channels: c,
            height: h,
            width: w,
        },
        label_names: names,
    })
}
