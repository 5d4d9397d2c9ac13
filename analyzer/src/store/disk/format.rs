//! The four tables' rows in Parquet files: each table's schema, rows
//! written as zstd-compressed row groups, and rows read back column by
//! column with the `parquet` crate's column API (no query engine: the
//! store's queries are sums over a few columns, done in [`super::scan`]).
//!
//! Columns are found by name, so files written by earlier versions (whose
//! columns were nullable, with dictionary pages and an Arrow schema in the
//! footer) read the same; a null where a value belongs reads as `0` or
//! `""`. Sample rows are written sorted by time, then endpoint (request
//! rows by time), so a row group's `time_ms` and `endpoint` statistics
//! let a query skip it.
//!
//! Length: over 600 lines with its tests (a third of it): one table
//! format, written and read, kept in one place.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{Compression, ZstdLevel};
use parquet::column::reader::{get_typed_column_reader, ColumnReaderImpl};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::file::statistics::Statistics;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use rustc_hash::FxHashMap as HashMap;

use super::tables::Table;
use crate::model::{
    DeployEvent, DeployFact, FactKind, RequestAgg, RequestKey, SampleKey, StackNode, Unit, Weight,
};
use crate::{Error, Result};

/// Rows per row group: small enough that a time filter skips most of a
/// compacted day, large enough that each column compresses well.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

const SAMPLES: &str = "message samples {
    REQUIRED INT64 time_ms;
    REQUIRED BYTE_ARRAY deploy (STRING);
    REQUIRED BYTE_ARRAY host (STRING);
    REQUIRED BYTE_ARRAY endpoint (STRING);
    REQUIRED BYTE_ARRAY labels (STRING);
    REQUIRED INT64 stack_id (INTEGER(64, false));
    REQUIRED BYTE_ARRAY unit (STRING);
    REQUIRED INT64 weight;
    REQUIRED INT64 count;
}";

const REQUESTS: &str = "message requests {
    REQUIRED INT64 time_ms;
    REQUIRED BYTE_ARRAY deploy (STRING);
    REQUIRED BYTE_ARRAY host (STRING);
    REQUIRED BYTE_ARRAY endpoint (STRING);
    REQUIRED BYTE_ARRAY unit (STRING);
    REQUIRED INT64 count;
    REQUIRED INT64 cost;
    REQUIRED BYTE_ARRAY histogram (STRING);
}";

const STACKS: &str = "message stacks {
    REQUIRED INT64 id (INTEGER(64, false));
    REQUIRED INT64 parent (INTEGER(64, false));
    REQUIRED BYTE_ARRAY function (STRING);
}";

const DEPLOYS: &str = "message deploys {
    REQUIRED BYTE_ARRAY deploy (STRING);
    REQUIRED INT64 time_ms;
    OPTIONAL BYTE_ARRAY commit (STRING);
    OPTIONAL BYTE_ARRAY author (STRING);
    OPTIONAL BYTE_ARRAY message (STRING);
}";

const FACTS: &str = "message facts {
    REQUIRED BYTE_ARRAY deploy (STRING);
    REQUIRED BYTE_ARRAY kind (STRING);
    REQUIRED BYTE_ARRAY key (STRING);
    REQUIRED BYTE_ARRAY value (STRING);
    REQUIRED INT64 time_ms;
}";

impl Table {
    fn schema(self) -> &'static str {
        match self {
            Table::Samples => SAMPLES,
            Table::Requests => REQUESTS,
            Table::Stacks => STACKS,
            Table::Deploys => DEPLOYS,
            Table::Facts => FACTS,
        }
    }

    /// The columns a file of this table must have.
    fn columns(self) -> impl Iterator<Item = &'static str> {
        self.schema()
            .lines()
            .skip(1)
            .filter_map(|line| line.trim().trim_end_matches(';').split_whitespace().nth(2))
            .map(|name| name.trim_end_matches(';'))
    }
}

/// One column's values, in schema order, for writing.
enum Values {
    Int(Vec<i64>),
    Text(Vec<ByteArray>),
    MaybeText(Vec<Option<ByteArray>>),
}

fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// A string column of shared strings: one buffer per distinct string
/// (by address), each row a reference to it.
fn shared_texts<'a>(values: impl Iterator<Item = &'a Arc<str>>) -> Values {
    let mut buffers: HashMap<usize, ByteArray> = HashMap::default();
    Values::Text(
        values
            .map(|v| {
                let address = Arc::as_ptr(v) as *const u8 as usize;
                buffers.entry(address).or_insert_with(|| text(v)).clone()
            })
            .collect(),
    )
}

fn parquet_error(path: &Path, source: ParquetError) -> Error {
    // I/O errors (a full disk above all) keep their kind.
    if let ParquetError::External(inner) = &source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return Error::io(
                format!("Parquet file {}", path.display()),
                std::io::Error::new(io.kind(), io.to_string()),
            );
        }
    }
    Error::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Writes `columns` (each `rows` long, in the table's schema order) to
/// `file` as a Parquet file.
fn write_columns(
    file: &mut File,
    path: &Path,
    table: Table,
    rows: usize,
    columns: Vec<Values>,
) -> Result<()> {
    let schema = Arc::new(parse_message_type(table.schema()).map_err(|e| parquet_error(path, e))?);
    let properties = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build(),
    );
    let result = (|| -> std::result::Result<(), ParquetError> {
        let mut writer = SerializedFileWriter::new(&mut *file, schema, properties)?;
        let mut start = 0;
        loop {
            let end = (start + ROW_GROUP_ROWS).min(rows);
            let mut group = writer.next_row_group()?;
            let mut values = columns.iter();
            while let Some(mut column) = group.next_column()? {
                match values.next() {
                    Some(Values::Int(v)) => {
                        column
                            .typed::<Int64Type>()
                            .write_batch(&v[start..end], None, None)?;
                    }
                    Some(Values::Text(v)) => {
                        column
                            .typed::<ByteArrayType>()
                            .write_batch(&v[start..end], None, None)?;
                    }
                    Some(Values::MaybeText(v)) => {
                        let slice = &v[start..end];
                        let levels: Vec<i16> = slice.iter().map(|x| i16::from(x.is_some())).collect();
                        let present: Vec<ByteArray> = slice.iter().flatten().cloned().collect();
                        column
                            .typed::<ByteArrayType>()
                            .write_batch(&present, Some(&levels), None)?;
                    }
                    None => return Err(ParquetError::General("fewer values than columns".into())),
                }
                column.close()?;
            }
            group.close()?;
            start = end;
            if start >= rows {
                break;
            }
        }
        writer.close()?;
        Ok(())
    })();
    result.map_err(|e| parquet_error(path, e))
}

/// Writes sample rows, sorted by time, then endpoint.
pub fn write_samples(file: &mut File, path: &Path, rows: &mut [(&SampleKey, Weight)]) -> Result<()> {
    rows.sort_unstable_by(|(a, _), (b, _)| (a.time_ms, &a.endpoint).cmp(&(b.time_ms, &b.endpoint)));
    let strings = |f: fn(&SampleKey) -> &Arc<str>| shared_texts(rows.iter().map(|(k, _)| f(k)));
    let (instructions, cpu_ns) = (text(Unit::Instructions.as_str()), text(Unit::CpuNs.as_str()));
    let unit = |u: Unit| match u {
        Unit::Instructions => instructions.clone(),
        Unit::CpuNs => cpu_ns.clone(),
    };
    let columns = vec![
        Values::Int(rows.iter().map(|(k, _)| k.time_ms).collect()),
        strings(|k| &k.deploy),
        strings(|k| &k.host),
        strings(|k| &k.endpoint),
        strings(|k| &k.labels),
        Values::Int(rows.iter().map(|(k, _)| k.stack_id as i64).collect()),
        Values::Text(rows.iter().map(|(k, _)| unit(k.unit)).collect()),
        Values::Int(rows.iter().map(|(_, w)| w.weight).collect()),
        Values::Int(rows.iter().map(|(_, w)| w.count).collect()),
    ];
    write_columns(file, path, Table::Samples, rows.len(), columns)
}

/// Writes request rows, sorted by time; histograms as JSON pairs.
pub fn write_requests(file: &mut File, path: &Path, rows: &mut [(&RequestKey, &RequestAgg)]) -> Result<()> {
    rows.sort_unstable_by_key(|(k, _)| k.time_ms);
    let strings = |f: fn(&RequestKey) -> &str| Values::Text(rows.iter().map(|(k, _)| text(f(k))).collect());
    // (request rows are few: one per host, endpoint and 10 s)
    let histograms = rows.iter().map(|(_, r)| {
        let pairs: Vec<(u32, u64)> = r.histogram.iter().map(|(&b, &n)| (b, n)).collect();
        text(&serde_json::to_string(&pairs).unwrap_or_default())
    });
    let columns = vec![
        Values::Int(rows.iter().map(|(k, _)| k.time_ms).collect()),
        strings(|k| &k.deploy),
        strings(|k| &k.host),
        strings(|k| &k.endpoint),
        strings(|k| k.unit.as_str()),
        Values::Int(rows.iter().map(|(_, r)| r.count).collect()),
        Values::Int(rows.iter().map(|(_, r)| r.cost).collect()),
        Values::Text(histograms.collect()),
    ];
    write_columns(file, path, Table::Requests, rows.len(), columns)
}

/// Writes stack nodes.
pub fn write_stacks(file: &mut File, path: &Path, nodes: &[StackNode]) -> Result<()> {
    let columns = vec![
        Values::Int(nodes.iter().map(|n| n.id as i64).collect()),
        Values::Int(nodes.iter().map(|n| n.parent as i64).collect()),
        Values::Text(nodes.iter().map(|n| text(&n.function)).collect()),
    ];
    write_columns(file, path, Table::Stacks, nodes.len(), columns)
}

/// Writes deploy events.
pub fn write_deploys(file: &mut File, path: &Path, events: &[DeployEvent]) -> Result<()> {
    let maybe = |f: fn(&DeployEvent) -> &Option<String>| {
        Values::MaybeText(events.iter().map(|e| f(e).as_deref().map(text)).collect())
    };
    let columns = vec![
        Values::Text(events.iter().map(|e| text(&e.deploy)).collect()),
        Values::Int(events.iter().map(|e| e.time_ms).collect()),
        maybe(|e| &e.commit),
        maybe(|e| &e.author),
        maybe(|e| &e.message),
    ];
    write_columns(file, path, Table::Deploys, events.len(), columns)
}

/// Writes facts about deploys.
pub fn write_facts(file: &mut File, path: &Path, facts: &[DeployFact]) -> Result<()> {
    let columns = vec![
        Values::Text(facts.iter().map(|f| text(&f.deploy)).collect()),
        Values::Text(facts.iter().map(|f| text(f.kind.as_str())).collect()),
        Values::Text(facts.iter().map(|f| text(&f.key)).collect()),
        Values::Text(facts.iter().map(|f| text(&f.value)).collect()),
        Values::Int(facts.iter().map(|f| f.time_ms).collect()),
    ];
    write_columns(file, path, Table::Facts, facts.len(), columns)
}

/// A time range to read, ms, `from` inclusive and `until` exclusive.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeRange {
    /// Start, if any.
    pub from_ms: Option<i64>,
    /// End, if any.
    pub until_ms: Option<i64>,
}

impl TimeRange {
    /// Whether `time_ms` lies in it.
    pub fn contains(self, time_ms: i64) -> bool {
        self.from_ms.is_none_or(|f| time_ms >= f) && self.until_ms.is_none_or(|u| time_ms < u)
    }

    fn overlaps(self, (low, high): (i64, i64)) -> bool {
        self.from_ms.is_none_or(|f| high >= f) && self.until_ms.is_none_or(|u| low < u)
    }
}

/// One column's values of a row group.
enum Column<T> {
    /// A column without nulls (what this version writes).
    Required(Vec<T>),
    /// A nullable column (earlier versions' files, deploy fields).
    Nullable(Vec<Option<T>>),
}

/// An open Parquet file of one table, its footer read.
pub struct TableFile {
    path: PathBuf,
    reader: SerializedFileReader<File>,
    /// Column index of each of the table's columns, by schema order.
    columns: Vec<usize>,
}

impl TableFile {
    /// Opens `path` and checks that its footer has every column of `table`.
    pub fn open(path: &Path, table: Table) -> Result<TableFile> {
        let file = File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let reader = SerializedFileReader::new(file).map_err(|e| parquet_error(path, e))?;
        let schema = reader.metadata().file_metadata().schema_descr();
        let columns = table
            .columns()
            .map(|name| {
                schema
                    .columns()
                    .iter()
                    .position(|c| c.path().string() == name)
                    .ok_or_else(|| Error::Parquet {
                        path: path.to_owned(),
                        source: ParquetError::General(format!("no column `{name}`")),
                    })
            })
            .collect::<Result<_>>()?;
        Ok(TableFile {
            path: path.to_owned(),
            reader,
            columns,
        })
    }

    fn row_groups(&self) -> usize {
        self.reader.metadata().num_row_groups()
    }

    fn group(&self, index: usize) -> Result<Box<dyn RowGroupReader + '_>> {
        self.reader
            .get_row_group(index)
            .map_err(|e| parquet_error(&self.path, e))
    }

    /// The smallest and largest value of column `column` in row group
    /// `index`, if its statistics say.
    fn int_range(&self, index: usize, column: usize) -> Option<(i64, i64)> {
        let meta = self.reader.metadata().row_group(index);
        match meta.column(self.columns[column]).statistics()? {
            Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    }

    /// Whether a string column of row group `index` may hold `value`:
    /// false only when its exact statistics bound it out.
    fn may_hold(&self, index: usize, column: usize, value: &str) -> bool {
        let meta = self.reader.metadata().row_group(index);
        let Some(Statistics::ByteArray(s)) = meta.column(self.columns[column]).statistics() else {
            return true;
        };
        match (
            s.min_bytes_opt(),
            s.max_bytes_opt(),
            s.min_is_exact() && s.max_is_exact(),
        ) {
            (Some(min), Some(max), true) => (min..=max).contains(&value.as_bytes()),
            _ => true,
        }
    }

    /// Every value of a column of one row group, `None` for nulls.
    fn read<T: DataType>(&self, group: &dyn RowGroupReader, column: usize) -> Result<Column<T::T>>
    where
        T::T: Clone,
    {
        let rows = group.metadata().num_rows() as usize;
        let index = self.columns[column];
        let reader = group
            .get_column_reader(index)
            .map_err(|e| parquet_error(&self.path, e))?;
        let mut reader: ColumnReaderImpl<T> = get_typed_column_reader(reader);
        let nullable = group.metadata().column(index).column_descr().max_def_level() > 0;
        let (mut values, mut levels) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut read = 0;
        while read < rows {
            let (records, _, _) = reader
                .read_records(rows - read, nullable.then_some(&mut levels), None, &mut values)
                .map_err(|e| parquet_error(&self.path, e))?;
            if records == 0 {
                break;
            }
            read += records;
        }
        if !nullable {
            return Ok(Column::Required(values));
        }
        let mut present = values.into_iter();
        Ok(Column::Nullable(
            levels
                .iter()
                .map(|&level| if level > 0 { present.next() } else { None })
                .collect(),
        ))
    }

    fn ints(&self, group: &dyn RowGroupReader, column: usize) -> Result<Vec<i64>> {
        let values = self.read::<Int64Type>(group, column)?;
        Ok(match values {
            Column::Required(v) => v,
            Column::Nullable(v) => v.into_iter().map(Option::unwrap_or_default).collect(),
        })
    }

    fn texts(&self, group: &dyn RowGroupReader, column: usize) -> Result<Vec<Option<ByteArray>>> {
        Ok(match self.read::<ByteArrayType>(group, column)? {
            Column::Required(v) => v.into_iter().map(Some).collect(),
            Column::Nullable(v) => v,
        })
    }

    fn utf8<'a>(&self, bytes: &'a Option<ByteArray>) -> Result<&'a str> {
        match bytes {
            None => Ok(""),
            Some(b) => std::str::from_utf8(b.data()).map_err(|_| Error::Parquet {
                path: self.path.clone(),
                source: ParquetError::General("a string column holds invalid UTF-8".into()),
            }),
        }
    }
}

/// A string column of one row group: its distinct values and, per row,
/// the index of its value. Queries filter on the distinct values once,
/// then on the codes.
#[derive(Debug, Default)]
pub struct Strings {
    /// Distinct values, in order of first appearance.
    pub values: Vec<Arc<str>>,
    /// Per row, an index into `values`.
    pub codes: Vec<u32>,
}

impl Strings {
    /// The value of `row`.
    pub fn get(&self, row: usize) -> &Arc<str> {
        &self.values[self.codes[row] as usize]
    }

    /// A column of `rows` empty strings (one not read).
    fn blank(rows: usize) -> Strings {
        Strings {
            values: vec!["".into()],
            codes: vec![0; rows],
        }
    }
}

impl TableFile {
    /// A string column of one row group as [`Strings`]. Values decoded
    /// from a dictionary page share its buffer, so most rows are matched
    /// by address; the rest by content.
    fn strings(&self, group: &dyn RowGroupReader, column: usize) -> Result<Strings> {
        let raw = self.texts(group, column)?;
        let mut by_address: HashMap<(usize, usize), u32> = HashMap::default();
        let mut by_content: HashMap<&[u8], u32> = HashMap::default();
        let mut out = Strings {
            values: Vec::new(),
            codes: Vec::with_capacity(raw.len()),
        };
        for value in &raw {
            let bytes: &[u8] = value.as_ref().map_or(&[], |b| b.data());
            let address = (bytes.as_ptr() as usize, bytes.len());
            let code = match by_address.get(&address) {
                Some(&code) => code,
                None => {
                    let code = match by_content.get(bytes) {
                        Some(&code) => code,
                        None => {
                            let code = out.values.len() as u32;
                            out.values.push(self.utf8(value)?.into());
                            by_content.insert(bytes, code);
                            code
                        }
                    };
                    by_address.insert(address, code);
                    code
                }
            };
            out.codes.push(code);
        }
        Ok(out)
    }
}

/// The sample rows of one row group, column by column.
#[derive(Debug)]
pub struct SampleGroup {
    /// Bucket start, ms.
    pub time_ms: Vec<i64>,
    /// Deploys.
    pub deploy: Strings,
    /// Hosts (blank when not read).
    pub host: Strings,
    /// Endpoints.
    pub endpoint: Strings,
    /// Other labels, canonical JSON (blank when not read).
    pub labels: Strings,
    /// Leaf stack nodes.
    pub stack_id: Vec<u64>,
    /// Units, `None` for a value this version does not know.
    pub unit: Vec<Option<Unit>>,
    /// Summed weights.
    pub weight: Vec<i64>,
    /// Summed sample counts.
    pub count: Vec<i64>,
}

impl SampleGroup {
    /// Rows in it.
    pub fn len(&self) -> usize {
        self.time_ms.len()
    }

    /// The key of `row`, or `None` if its unit is unknown.
    pub fn key(&self, row: usize) -> Option<SampleKey> {
        Some(SampleKey {
            time_ms: self.time_ms[row],
            deploy: self.deploy.get(row).clone(),
            host: self.host.get(row).clone(),
            endpoint: self.endpoint.get(row).clone(),
            labels: self.labels.get(row).clone(),
            stack_id: self.stack_id[row],
            unit: self.unit[row]?,
        })
    }

    /// The weight of `row`.
    pub fn weight(&self, row: usize) -> Weight {
        Weight {
            weight: self.weight[row],
            count: self.count[row],
        }
    }
}

/// Which of a sample row's descriptive columns a reader needs: a column
/// left out is not decompressed and reads as `""`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleColumns {
    /// The host.
    pub host: bool,
    /// The other labels.
    pub labels: bool,
}

impl SampleColumns {
    /// Every column (compaction).
    pub const ALL: SampleColumns = SampleColumns {
        host: true,
        labels: true,
    };
}

/// The row groups of a samples file that may hold rows in `range`.
/// With `endpoint`, also only those that may hold it (rows are written
/// sorted by time, then endpoint, so a row group of a large file holds
/// few endpoints).
pub fn sample_groups(
    path: &Path,
    range: TimeRange,
    endpoint: Option<&str>,
) -> Result<(TableFile, Vec<usize>)> {
    let file = TableFile::open(path, Table::Samples)?;
    let groups = (0..file.row_groups())
        .filter(|&index| file.int_range(index, 0).is_none_or(|r| range.overlaps(r)))
        .filter(|&index| endpoint.is_none_or(|e| file.may_hold(index, 3, e)))
        .collect();
    Ok((file, groups))
}

/// Reads row group `index` of a samples file, with the columns in `columns`.
pub fn read_sample_group(file: &TableFile, index: usize, columns: SampleColumns) -> Result<SampleGroup> {
    let group = file.group(index)?;
    let rows = group.metadata().num_rows() as usize;
    let optional = |wanted: bool, column: usize| match wanted {
        true => file.strings(&*group, column),
        false => Ok(Strings::blank(rows)),
    };
    let units = file.strings(&*group, 6)?;
    let known: Vec<Option<Unit>> = units.values.iter().map(|u| Unit::parse(u)).collect();
    Ok(SampleGroup {
        time_ms: file.ints(&*group, 0)?,
        deploy: file.strings(&*group, 1)?,
        host: optional(columns.host, 2)?,
        endpoint: file.strings(&*group, 3)?,
        labels: optional(columns.labels, 4)?,
        stack_id: file.ints(&*group, 5)?.into_iter().map(|id| id as u64).collect(),
        unit: units.codes.iter().map(|&c| known[c as usize]).collect(),
        weight: file.ints(&*group, 7)?,
        count: file.ints(&*group, 8)?,
    })
}

/// Calls `visit` with every row group of `path` that may hold rows in
/// `range` (its rows still need the range checked), with the columns in
/// `columns`.
pub fn read_samples(
    path: &Path,
    range: TimeRange,
    columns: SampleColumns,
    mut visit: impl FnMut(&SampleGroup),
) -> Result<()> {
    let (file, groups) = sample_groups(path, range, None)?;
    for index in groups {
        visit(&read_sample_group(&file, index, columns)?);
    }
    Ok(())
}

/// Calls `visit` with every request row of `path` whose time is in
/// `range`; histograms are parsed only when `histograms` is set.
pub fn read_requests(
    path: &Path,
    range: TimeRange,
    histograms: bool,
    mut visit: impl FnMut(RequestKey, RequestAgg),
) -> Result<()> {
    let file = TableFile::open(path, Table::Requests)?;
    for index in 0..file.row_groups() {
        if file.int_range(index, 0).is_some_and(|r| !range.overlaps(r)) {
            continue;
        }
        let group = file.group(index)?;
        let time = file.ints(&*group, 0)?;
        let [deploy, host, endpoint, unit] = [1, 2, 3, 4].map(|c| file.strings(&*group, c));
        let (deploy, host, endpoint, unit) = (deploy?, host?, endpoint?, unit?);
        let (count, cost) = (file.ints(&*group, 5)?, file.ints(&*group, 6)?);
        let histogram = if histograms {
            file.texts(&*group, 7)?
        } else {
            Vec::new()
        };
        for row in 0..time.len() {
            if !range.contains(time[row]) {
                continue;
            }
            let Some(unit) = Unit::parse(unit.get(row)) else {
                continue;
            };
            let pairs: Vec<(u32, u64)> = match histogram.get(row) {
                Some(json) => serde_json::from_str(file.utf8(json)?).unwrap_or_default(),
                None => Vec::new(),
            };
            visit(
                RequestKey {
                    time_ms: time[row],
                    deploy: deploy.get(row).clone(),
                    host: host.get(row).clone(),
                    endpoint: endpoint.get(row).clone(),
                    unit,
                },
                RequestAgg {
                    count: count[row],
                    cost: cost[row],
                    histogram: pairs.into_iter().collect::<BTreeMap<u32, u64>>(),
                },
            );
        }
    }
    Ok(())
}

/// Every stack node of `path`.
pub fn read_stacks(path: &Path) -> Result<Vec<StackNode>> {
    let file = TableFile::open(path, Table::Stacks)?;
    let mut nodes = Vec::new();
    for index in 0..file.row_groups() {
        let group = file.group(index)?;
        let (ids, parents) = (file.ints(&*group, 0)?, file.ints(&*group, 1)?);
        let functions = file.texts(&*group, 2)?;
        for ((id, parent), function) in ids.into_iter().zip(parents).zip(&functions) {
            nodes.push(StackNode {
                id: id as u64,
                parent: parent as u64,
                function: file.utf8(function)?.into(),
            });
        }
    }
    Ok(nodes)
}

/// Every deploy event of `path`.
pub fn read_deploys(path: &Path) -> Result<Vec<DeployEvent>> {
    let file = TableFile::open(path, Table::Deploys)?;
    let mut events = Vec::new();
    for index in 0..file.row_groups() {
        let group = file.group(index)?;
        let deploys = file.texts(&*group, 0)?;
        let times = file.ints(&*group, 1)?;
        let [commits, authors, messages] = [2, 3, 4].map(|c| file.texts(&*group, c));
        let (commits, authors, messages) = (commits?, authors?, messages?);
        let optional = |v: &Option<ByteArray>| -> Result<Option<String>> {
            Ok(match v {
                Some(_) => Some(file.utf8(v)?.to_owned()),
                None => None,
            })
        };
        for row in 0..times.len() {
            events.push(DeployEvent {
                deploy: file.utf8(&deploys[row])?.to_owned(),
                time_ms: times[row],
                commit: optional(&commits[row])?,
                author: optional(&authors[row])?,
                message: optional(&messages[row])?,
            });
        }
    }
    Ok(events)
}

/// Every fact of `path` (rows of a kind this version does not know are
/// skipped).
pub fn read_facts(path: &Path) -> Result<Vec<DeployFact>> {
    let file = TableFile::open(path, Table::Facts)?;
    let mut facts = Vec::new();
    for index in 0..file.row_groups() {
        let group = file.group(index)?;
        let [deploys, kinds, keys, values] = [0, 1, 2, 3].map(|c| file.texts(&*group, c));
        let (deploys, kinds, keys, values) = (deploys?, kinds?, keys?, values?);
        let times = file.ints(&*group, 4)?;
        let text = |v: &Option<ByteArray>| file.utf8(v).map(str::to_owned);
        for row in 0..times.len() {
            let Some(kind) = FactKind::parse(&text(&kinds[row])?) else {
                continue;
            };
            facts.push(DeployFact {
                deploy: text(&deploys[row])?,
                kind,
                key: text(&keys[row])?,
                value: text(&values[row])?,
                time_ms: times[row],
            });
        }
    }
    Ok(facts)
}

/// Reads a file's footer and checks that it has the table's columns.
pub fn check(path: &Path, table: Table) -> Result<()> {
    TableFile::open(path, table).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(time_ms: i64, deploy: &str, stack_id: u64) -> SampleKey {
        SampleKey {
            time_ms,
            deploy: deploy.into(),
            host: "h".into(),
            endpoint: "/e".into(),
            labels: "{}".into(),
            stack_id,
            unit: Unit::CpuNs,
        }
    }

    #[test]
    fn samples_round_trip_across_row_groups_with_time_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        let keys: Vec<SampleKey> = (0..ROW_GROUP_ROWS as i64 * 2 + 5)
            .map(|i| {
                key(
                    1_000 + i,
                    if i % 2 == 0 { "v1" } else { "v2" },
                    u64::MAX - i as u64,
                )
            })
            .collect();
        let mut rows: Vec<(&SampleKey, Weight)> = keys
            .iter()
            .rev()
            .map(|k| {
                (
                    k,
                    Weight {
                        weight: k.time_ms * 10,
                        count: 1,
                    },
                )
            })
            .collect();
        write_samples(&mut File::create(&path).unwrap(), &path, &mut rows).unwrap();
        let file = TableFile::open(&path, Table::Samples).unwrap();
        assert_eq!(file.row_groups(), 3);
        let first_group = (1_000, 1_000 + ROW_GROUP_ROWS as i64 - 1);
        assert_eq!(
            file.int_range(0, 0),
            Some(first_group),
            "what lets a query skip it"
        );
        let mut back = Vec::new();
        read_samples(&path, TimeRange::default(), SampleColumns::ALL, |g| {
            back.extend((0..g.len()).map(|row| (g.key(row).unwrap(), g.weight(row))))
        })
        .unwrap();
        assert_eq!(back.len(), keys.len());
        assert_eq!(back[0].0, keys[0], "sorted by time");
        assert_eq!(
            back.last().unwrap().0,
            *keys.last().unwrap(),
            "u64 stack ids survive"
        );
        assert!(back.iter().all(|(k, w)| w.weight == k.time_ms * 10));
        let tail = TimeRange {
            from_ms: Some(1_000 + ROW_GROUP_ROWS as i64 * 2),
            until_ms: None,
        };
        let mut last = Vec::new();
        let no_labels = SampleColumns {
            host: true,
            labels: false,
        };
        read_samples(&path, tail, no_labels, |g| {
            let rows = (0..g.len()).filter(|&row| g.time_ms[row] >= tail.from_ms.unwrap());
            last.extend(rows.map(|row| (g.time_ms[row], g.labels.get(row).clone())))
        })
        .unwrap();
        assert_eq!(last.len(), 5);
        assert!(
            last.iter().all(|(_, labels)| labels.is_empty()),
            "labels not read"
        );
    }

    #[test]
    fn an_endpoint_filter_skips_row_groups_that_cannot_hold_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.parquet");
        // One time bucket, three endpoints: sorted by endpoint within it,
        // each row group holds one.
        let keys: Vec<SampleKey> = ["/c", "/a", "/b"]
            .iter()
            .flat_map(|e| {
                (0..ROW_GROUP_ROWS as u64).map(|i| SampleKey {
                    endpoint: (*e).into(),
                    ..key(1_000, "v1", i)
                })
            })
            .collect();
        let mut rows: Vec<(&SampleKey, Weight)> = keys.iter().map(|k| (k, Weight::default())).collect();
        write_samples(&mut File::create(&path).unwrap(), &path, &mut rows).unwrap();
        let (file, all) = sample_groups(&path, TimeRange::default(), None).unwrap();
        assert_eq!(all, [0, 1, 2]);
        let (_, b) = sample_groups(&path, TimeRange::default(), Some("/b")).unwrap();
        assert_eq!(b, [1]);
        let group = read_sample_group(&file, 1, SampleColumns::ALL).unwrap();
        assert!((0..group.len()).all(|row| &**group.endpoint.get(row) == "/b"));
        let (_, none) = sample_groups(&path, TimeRange::default(), Some("/z")).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn deploys_keep_their_missing_fields_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.parquet");
        let events = vec![
            DeployEvent {
                deploy: "v1".into(),
                time_ms: 5,
                commit: Some("abc".into()),
                author: None,
                message: Some(String::new()),
            },
            DeployEvent {
                deploy: "v2".into(),
                time_ms: 6,
                commit: None,
                author: Some("ann".into()),
                message: None,
            },
        ];
        write_deploys(&mut File::create(&path).unwrap(), &path, &events).unwrap();
        assert_eq!(read_deploys(&path).unwrap(), events);
    }

    #[test]
    fn a_file_of_another_table_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.parquet");
        let nodes = [StackNode {
            id: 1,
            parent: 0,
            function: "main".into(),
        }];
        write_stacks(&mut File::create(&path).unwrap(), &path, &nodes).unwrap();
        assert_eq!(read_stacks(&path).unwrap(), nodes);
        let err = check(&path, Table::Samples).unwrap_err().to_string();
        assert!(err.contains("no column `time_ms`"), "{err}");
    }
}
