//! Cases ported from Apache Avro's own test suite (github.com/apache/avro, Apache-2.0):
//! canonical forms and fingerprints from `share/test/data/schema-tests.txt`, and
//! reader/writer pairs from `lang/java/avro/src/test/java/org/apache/avro/`
//! `TestSchemaCompatibility*.java` over the schemas of `TestSchemas.java`. Each row names its
//! source file; expected kinds, messages and locations are Java's.

use l2f_contracts::compat::{check, check_level, Kind, Level};
use l2f_contracts::schema::crc64_avro;
use l2f_contracts::Schema;

// ---- share/test/data/schema-tests.txt --------------------------------------------------

/// (case number, input, canonical form, fingerprint when the file gives one)
const CANONICAL_CASES: &[(u32, &str, &str, Option<i64>)] = &[
    (0, r#""null""#, r#""null""#, Some(7195948357588979594)),
    (1, r#"{"type":"null"}"#, r#""null""#, None),
    (
        2,
        r#""boolean""#,
        r#""boolean""#,
        Some(-6970731678124411036),
    ),
    (3, r#"{"type":"boolean"}"#, r#""boolean""#, None),
    (4, r#""int""#, r#""int""#, Some(8247732601305521295)),
    (5, r#"{"type":"int"}"#, r#""int""#, None),
    (6, r#""long""#, r#""long""#, Some(-3434872931120570953)),
    (7, r#"{"type":"long"}"#, r#""long""#, None),
    (8, r#""float""#, r#""float""#, Some(5583340709985441680)),
    (9, r#"{"type":"float"}"#, r#""float""#, None),
    (10, r#""double""#, r#""double""#, Some(-8181574048448539266)),
    (11, r#"{"type":"double"}"#, r#""double""#, None),
    (12, r#""bytes""#, r#""bytes""#, Some(5746618253357095269)),
    (13, r#"{"type":"bytes"}"#, r#""bytes""#, None),
    (14, r#""string""#, r#""string""#, Some(-8142146995180207161)),
    (15, r#"{"type":"string"}"#, r#""string""#, None),
    (16, r#"[  ]"#, r#"[]"#, Some(-1241056759729112623)),
    (
        17,
        r#"[ "int"  ]"#,
        r#"["int"]"#,
        Some(-5232228896498058493),
    ),
    (
        18,
        r#"[ "int" , {"type":"boolean"} ]"#,
        r#"["int","boolean"]"#,
        Some(5392556393470105090),
    ),
    (
        19,
        r#"{"fields":[], "type":"record", "name":"foo"}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        Some(-4824392279771201922),
    ),
    (
        20,
        r#"{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}"#,
        r#"{"name":"x.y.foo","type":"record","fields":[]}"#,
        Some(5916914534497305771),
    ),
    (
        21,
        r#"{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}"#,
        r#"{"name":"a.b.foo","type":"record","fields":[]}"#,
        Some(-4616218487480524110),
    ),
    (
        22,
        r#"{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        Some(-4824392279771201922),
    ),
    (
        23,
        r#"{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        Some(-4824392279771201922),
    ),
    (
        24,
        r#"{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}"#,
        r#"{"name":"foo","type":"record","fields":[]}"#,
        Some(-4824392279771201922),
    ),
    (
        25,
        r#"{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}"#,
        r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}"#,
        Some(7843277075252814651),
    ),
    (
        26,
        r#"{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":"true"},
            {"order":"descending","name":"f2","doc":"Hello","type":"int"}],
  "type":"record", "name":"foo"
}"#,
        r#"{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}"#,
        Some(-4860222112080293046),
    ),
    (
        27,
        r#"{"type":"enum", "name":"foo", "symbols":["A1"]}"#,
        r#"{"name":"foo","type":"enum","symbols":["A1"]}"#,
        Some(-6342190197741309591),
    ),
    (
        28,
        r#"{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}"#,
        r#"{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}"#,
        Some(-4448647247586288245),
    ),
    (
        29,
        r#"{"name":"foo","type":"fixed","size":15}"#,
        r#"{"name":"foo","type":"fixed","size":15}"#,
        Some(1756455273707447556),
    ),
    (
        30,
        r#"{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}"#,
        r#"{"name":"x.y.z.foo","type":"fixed","size":32}"#,
        Some(-3064184465700546786),
    ),
    (
        31,
        r#"{ "items":{"type":"null"}, "type":"array"}"#,
        r#"{"type":"array","items":"null"}"#,
        Some(-589620603366471059),
    ),
    (
        32,
        r#"{ "values":"string", "type":"map"}"#,
        r#"{"type":"map","values":"string"}"#,
        Some(-8732877298790414990),
    ),
    (
        33,
        r#"{"name":"PigValue","type":"record",
   "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}"#,
        r#"{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}"#,
        Some(-1759257747318642341),
    ),
];

#[test]
fn canonical_forms_and_fingerprints_match_apache_avro_test_data() {
    for (n, input, canonical, fp) in CANONICAL_CASES {
        let s = Schema::parse_str(input).unwrap_or_else(|e| panic!("case {n:03}: {e}"));
        assert_eq!(s.canonical_form(), *canonical, "case {n:03}");
        if let Some(fp) = fp {
            assert_eq!(s.fingerprint() as i64, *fp, "case {n:03}");
        }
    }
    assert_eq!(CANONICAL_CASES.len(), 34);
}

#[test]
fn logical_types_are_stripped_from_the_canonical_form_as_java_does() {
    // Java's SchemaNormalization keeps only name/type/fields/symbols/items/values/size.
    let s = Schema::parse_str(r#"{"type":"string","logicalType":"uuid"}"#).unwrap();
    assert_eq!(s.canonical_form(), r#""string""#);
    assert_eq!(s.fingerprint(), crc64_avro(br#""string""#));
    let d =
        Schema::parse_str(r#"{"type":"bytes","logicalType":"decimal","precision":18,"scale":2}"#)
            .unwrap();
    assert_eq!(d.canonical_form(), r#""bytes""#);
}

// ---- TestSchemas.java --------------------------------------------------------------------

const NULL: &str = r#""null""#;
const BOOLEAN: &str = r#""boolean""#;
const INT: &str = r#""int""#;
const LONG: &str = r#""long""#;
const FLOAT: &str = r#""float""#;
const DOUBLE: &str = r#""double""#;
const STRING: &str = r#""string""#;
const BYTES: &str = r#""bytes""#;
const INT_ARRAY: &str = r#"{"type":"array","items":"int"}"#;
const LONG_ARRAY: &str = r#"{"type":"array","items":"long"}"#;
const STRING_ARRAY: &str = r#"{"type":"array","items":"string"}"#;
const INT_MAP: &str = r#"{"type":"map","values":"int"}"#;
const LONG_MAP: &str = r#"{"type":"map","values":"long"}"#;
const STRING_MAP: &str = r#"{"type":"map","values":"string"}"#;
const ENUM1_AB: &str = r#"{"type":"enum","name":"Enum1","symbols":["A","B"]}"#;
const ENUM1_ABC: &str = r#"{"type":"enum","name":"Enum1","symbols":["A","B","C"]}"#;
const ENUM1_BC: &str = r#"{"type":"enum","name":"Enum1","symbols":["B","C"]}"#;
const ENUM2_AB: &str = r#"{"type":"enum","name":"Enum2","symbols":["A","B"]}"#;
const ENUM_ABC_DEFAULT_A: &str =
    r#"{"type":"enum","name":"Enum","symbols":["A","B","C"],"default":"A"}"#;
const ENUM_AB_DEFAULT_A: &str =
    r#"{"type":"enum","name":"Enum","symbols":["A","B"],"default":"A"}"#;
const EMPTY_UNION: &str = "[]";
const NULL_UNION: &str = r#"["null"]"#;
const INT_UNION: &str = r#"["int"]"#;
const LONG_UNION: &str = r#"["long"]"#;
const FLOAT_UNION: &str = r#"["float"]"#;
const DOUBLE_UNION: &str = r#"["double"]"#;
const STRING_UNION: &str = r#"["string"]"#;
const BYTES_UNION: &str = r#"["bytes"]"#;
const INT_STRING_UNION: &str = r#"["int","string"]"#;
const STRING_INT_UNION: &str = r#"["string","int"]"#;
const INT_FLOAT_UNION: &str = r#"["int","float"]"#;
const INT_LONG_UNION: &str = r#"["int","long"]"#;
const INT_LONG_FLOAT_DOUBLE_UNION: &str = r#"["int","long","float","double"]"#;
const EMPTY_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[]}"#;
const EMPTY_RECORD2: &str = r#"{"type":"record","name":"Record2","fields":[]}"#;
const A_INT_RECORD1: &str =
    r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"}]}"#;
const A_LONG_RECORD1: &str =
    r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"long"}]}"#;
const A_INT_B_INT_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
const A_DINT_RECORD1: &str =
    r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0}]}"#;
const A_INT_B_DINT_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}"#;
const A_DINT_B_DINT_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":"int","default":0}]}"#;
const A_DINT_B_DFIXED_4_BYTES_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"fixed","name":"Fixed","size":4}}]}"#;
const A_DINT_B_DFIXED_8_BYTES_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"fixed","name":"Fixed","size":8}}]}"#;
const A_DINT_B_DINT_STRING_UNION_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":["int","string"],"default":0}]}"#;
const A_DINT_B_DINT_UNION_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":["int"],"default":0}]}"#;
const A_DINT_B_DENUM_1_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"enum","name":"Enum1","symbols":["A","B"]}}]}"#;
const A_DINT_B_DENUM_2_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"a","type":"int","default":0},{"name":"b","type":{"type":"enum","name":"Enum2","symbols":["A","B"]}}]}"#;
const FIXED_4_BYTES: &str = r#"{"type":"fixed","name":"Fixed","size":4}"#;
const FIXED_8_BYTES: &str = r#"{"type":"fixed","name":"Fixed","size":8}"#;
const INT_LIST_RECORD: &str = r#"{"type":"record","name":"List","fields":[{"name":"head","type":"int"},{"name":"tail","type":"List"}]}"#;
const LONG_LIST_RECORD: &str = r#"{"type":"record","name":"List","fields":[{"name":"head","type":"long"},{"name":"tail","type":"List"}]}"#;
const NS_RECORD1: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"f1","type":["null",{"type":"array","items":{"type":"record","name":"InnerRecord1","namespace":"ns1","fields":[{"name":"a","type":"int"}]}}]}]}"#;
const NS_RECORD2: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"f1","type":["null",{"type":"array","items":{"type":"record","name":"InnerRecord1","namespace":"ns2","fields":[{"name":"a","type":"int"}]}}]}]}"#;

// TestSchemaCompatibilityMissingUnionBranch.java / MissingEnumSymbols.java local schemas.
const RECORD1_WITH_INT: &str =
    r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":"int"}]}"#;
const UNION_INT_RECORD1: &str =
    r#"["int",{"type":"record","name":"Record1","fields":[{"name":"field1","type":"int"}]}]"#;
const UNION_INT_RECORD2: &str =
    r#"["int",{"type":"record","name":"Record2","fields":[{"name":"field1","type":"int"}]}]"#;
const UNION_INT_ENUM1_AB: &str = r#"["int",{"type":"enum","name":"Enum1","symbols":["A","B"]}]"#;
const UNION_INT_FIXED_4_BYTES: &str = r#"["int",{"type":"fixed","name":"Fixed","size":4}]"#;
const UNION_INT_BOOLEAN: &str = r#"["int","boolean"]"#;
const UNION_INT_ARRAY_INT: &str = r#"["int",{"type":"array","items":"int"}]"#;
const UNION_INT_MAP_INT: &str = r#"["int",{"type":"map","values":"int"}]"#;
const UNION_INT_NULL: &str = r#"["int","null"]"#;
const RECORD1_WITH_ENUM_AB: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum1","symbols":["A","B"]}}]}"#;
const RECORD1_WITH_ENUM_ABC: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum1","symbols":["A","B","C"]}}]}"#;
const FIXED_4_ANOTHER_NAME: &str = r#"{"type":"fixed","name":"AnotherName","size":4}"#;
// TestSchemaCompatibilityEnumDefaults.java: reader enums with a default accept unknown symbols.
const RECORD_ENUM_ABC_DEFAULT_A: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum","symbols":["A","B","C"],"default":"A"}}]}"#;
const RECORD_ENUM_AB_DEFAULT_A: &str = r#"{"type":"record","name":"Record1","fields":[{"name":"field1","type":{"type":"enum","name":"Enum","symbols":["A","B"],"default":"A"}}]}"#;

const COMPAT: &str = "TestSchemaCompatibility.java COMPATIBLE_READER_WRITER_TEST_CASES";

/// (source, reader, writer) pairs Java finds compatible.
const COMPATIBLE: &[(&str, &str, &str)] = &[
    (COMPAT, BOOLEAN, BOOLEAN),
    (COMPAT, INT, INT),
    (COMPAT, LONG, INT),
    (COMPAT, LONG, LONG),
    (COMPAT, FLOAT, INT),
    (COMPAT, FLOAT, LONG),
    (COMPAT, DOUBLE, LONG),
    (COMPAT, DOUBLE, INT),
    (COMPAT, DOUBLE, FLOAT),
    (COMPAT, STRING, STRING),
    (COMPAT, BYTES, BYTES),
    (COMPAT, INT_ARRAY, INT_ARRAY),
    (COMPAT, LONG_ARRAY, INT_ARRAY),
    (COMPAT, INT_MAP, INT_MAP),
    (COMPAT, LONG_MAP, INT_MAP),
    (COMPAT, ENUM1_AB, ENUM1_AB),
    (COMPAT, ENUM1_ABC, ENUM1_AB),
    (COMPAT, STRING, BYTES),
    (COMPAT, BYTES, STRING),
    (COMPAT, EMPTY_UNION, EMPTY_UNION),
    (COMPAT, FLOAT_UNION, EMPTY_UNION),
    (COMPAT, INT_UNION, INT_UNION),
    (COMPAT, INT_STRING_UNION, STRING_INT_UNION),
    (COMPAT, INT_UNION, EMPTY_UNION),
    (COMPAT, LONG_UNION, EMPTY_UNION),
    (COMPAT, LONG_UNION, INT_UNION),
    (COMPAT, DOUBLE_UNION, INT_UNION),
    (COMPAT, DOUBLE_UNION, LONG_UNION),
    (COMPAT, DOUBLE_UNION, FLOAT_UNION),
    (COMPAT, DOUBLE_UNION, INT_FLOAT_UNION),
    (COMPAT, STRING_UNION, EMPTY_UNION),
    (COMPAT, STRING_UNION, BYTES_UNION),
    (COMPAT, BYTES_UNION, EMPTY_UNION),
    (COMPAT, BYTES_UNION, STRING_UNION),
    (COMPAT, FLOAT, INT_FLOAT_UNION),
    (COMPAT, LONG, INT_LONG_UNION),
    (COMPAT, DOUBLE, INT_FLOAT_UNION),
    (COMPAT, DOUBLE, INT_LONG_FLOAT_DOUBLE_UNION),
    (COMPAT, FLOAT, FLOAT_UNION),
    (COMPAT, INT_UNION, INT),
    (COMPAT, INT, INT_UNION),
    (COMPAT, FIXED_4_BYTES, FIXED_4_BYTES),
    (COMPAT, EMPTY_RECORD1, EMPTY_RECORD1),
    (COMPAT, EMPTY_RECORD1, A_INT_RECORD1),
    (COMPAT, A_INT_RECORD1, A_INT_RECORD1),
    (COMPAT, A_DINT_RECORD1, A_INT_RECORD1),
    (COMPAT, A_DINT_RECORD1, A_DINT_RECORD1),
    (COMPAT, A_INT_RECORD1, A_DINT_RECORD1),
    (COMPAT, A_LONG_RECORD1, A_INT_RECORD1),
    (COMPAT, A_INT_RECORD1, A_INT_B_INT_RECORD1),
    (COMPAT, A_DINT_RECORD1, A_INT_B_INT_RECORD1),
    (COMPAT, A_INT_B_DINT_RECORD1, A_INT_RECORD1),
    (COMPAT, A_DINT_B_DINT_RECORD1, EMPTY_RECORD1),
    (COMPAT, A_DINT_B_DINT_RECORD1, A_INT_RECORD1),
    (COMPAT, A_INT_B_INT_RECORD1, A_DINT_B_DINT_RECORD1),
    (COMPAT, INT_LIST_RECORD, INT_LIST_RECORD),
    (COMPAT, LONG_LIST_RECORD, LONG_LIST_RECORD),
    (COMPAT, LONG_LIST_RECORD, INT_LIST_RECORD),
    (COMPAT, NULL, NULL),
    (
        "TestSchemaCompatibility.java testValidateArrayWriterSchema",
        STRING_ARRAY,
        STRING_ARRAY,
    ),
    (
        "TestSchemaCompatibility.java testValidatePrimitiveWriterSchema",
        STRING,
        STRING,
    ),
    (
        "TestSchemaCompatibility.java (NS_RECORD1/NS_RECORD2: names compare unqualified)",
        NS_RECORD1,
        NS_RECORD2,
    ),
    (
        "TestSchemaCompatibilityEnumDefaults.java enumDefaultAppliedWhenNoFieldDefaultDefined",
        RECORD_ENUM_AB_DEFAULT_A,
        RECORD_ENUM_ABC_DEFAULT_A,
    ),
    (
        "TestSchemaCompatibilityEnumDefaults.java enumDefaultAppliedWhenNoFieldDefaultDefined",
        ENUM_AB_DEFAULT_A,
        ENUM_ABC_DEFAULT_A,
    ),
    ("TestSchemas.java NULL_UNION_SCHEMA", NULL_UNION, NULL),
];

const TM: &str = "TestSchemaCompatibilityTypeMismatch.java";
const MUB: &str = "TestSchemaCompatibilityMissingUnionBranch.java";
const MES: &str = "TestSchemaCompatibilityMissingEnumSymbols.java";
const NM: &str = "TestSchemaCompatibilityNameMismatch.java";
const FSM: &str = "TestSchemaCompatibilityFixedSizeMismatch.java";
const RFMD: &str = "TestSchemaCompatibilityReaderFieldMissingDefaultValue.java";

/// (source, reader, writer, kind, Java messages, Java locations).
type Incompatible = (
    &'static str,
    &'static str,
    &'static str,
    Kind,
    &'static [&'static str],
    &'static [&'static str],
);

const INCOMPATIBLE: &[Incompatible] = &[
    (
        TM,
        NULL,
        INT,
        Kind::TypeMismatch,
        &["reader type: NULL not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        NULL,
        LONG,
        Kind::TypeMismatch,
        &["reader type: NULL not compatible with writer type: LONG"],
        &["/"],
    ),
    (
        TM,
        BOOLEAN,
        INT,
        Kind::TypeMismatch,
        &["reader type: BOOLEAN not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        INT,
        NULL,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: NULL"],
        &["/"],
    ),
    (
        TM,
        INT,
        BOOLEAN,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: BOOLEAN"],
        &["/"],
    ),
    (
        TM,
        INT,
        LONG,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: LONG"],
        &["/"],
    ),
    (
        TM,
        INT,
        FLOAT,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: FLOAT"],
        &["/"],
    ),
    (
        TM,
        INT,
        DOUBLE,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: DOUBLE"],
        &["/"],
    ),
    (
        TM,
        LONG,
        FLOAT,
        Kind::TypeMismatch,
        &["reader type: LONG not compatible with writer type: FLOAT"],
        &["/"],
    ),
    (
        TM,
        LONG,
        DOUBLE,
        Kind::TypeMismatch,
        &["reader type: LONG not compatible with writer type: DOUBLE"],
        &["/"],
    ),
    (
        TM,
        FLOAT,
        DOUBLE,
        Kind::TypeMismatch,
        &["reader type: FLOAT not compatible with writer type: DOUBLE"],
        &["/"],
    ),
    (
        TM,
        DOUBLE,
        STRING,
        Kind::TypeMismatch,
        &["reader type: DOUBLE not compatible with writer type: STRING"],
        &["/"],
    ),
    (
        TM,
        FIXED_4_BYTES,
        STRING,
        Kind::TypeMismatch,
        &["reader type: FIXED not compatible with writer type: STRING"],
        &["/"],
    ),
    (
        TM,
        STRING,
        BOOLEAN,
        Kind::TypeMismatch,
        &["reader type: STRING not compatible with writer type: BOOLEAN"],
        &["/"],
    ),
    (
        TM,
        STRING,
        INT,
        Kind::TypeMismatch,
        &["reader type: STRING not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        BYTES,
        NULL,
        Kind::TypeMismatch,
        &["reader type: BYTES not compatible with writer type: NULL"],
        &["/"],
    ),
    (
        TM,
        BYTES,
        INT,
        Kind::TypeMismatch,
        &["reader type: BYTES not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        A_INT_RECORD1,
        INT,
        Kind::TypeMismatch,
        &["reader type: RECORD not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        INT_ARRAY,
        LONG_ARRAY,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: LONG"],
        &["/items"],
    ),
    (
        TM,
        INT_MAP,
        INT_ARRAY,
        Kind::TypeMismatch,
        &["reader type: MAP not compatible with writer type: ARRAY"],
        &["/"],
    ),
    (
        TM,
        INT_ARRAY,
        INT_MAP,
        Kind::TypeMismatch,
        &["reader type: ARRAY not compatible with writer type: MAP"],
        &["/"],
    ),
    (
        TM,
        INT_MAP,
        LONG_MAP,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: LONG"],
        &["/values"],
    ),
    (
        TM,
        INT,
        ENUM2_AB,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: ENUM"],
        &["/"],
    ),
    (
        TM,
        ENUM2_AB,
        INT,
        Kind::TypeMismatch,
        &["reader type: ENUM not compatible with writer type: INT"],
        &["/"],
    ),
    (
        TM,
        FLOAT,
        INT_LONG_FLOAT_DOUBLE_UNION,
        Kind::TypeMismatch,
        &["reader type: FLOAT not compatible with writer type: DOUBLE"],
        &["/"],
    ),
    (
        TM,
        LONG,
        INT_FLOAT_UNION,
        Kind::TypeMismatch,
        &["reader type: LONG not compatible with writer type: FLOAT"],
        &["/"],
    ),
    (
        TM,
        INT,
        INT_FLOAT_UNION,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: FLOAT"],
        &["/"],
    ),
    (
        TM,
        INT_LIST_RECORD,
        LONG_LIST_RECORD,
        Kind::TypeMismatch,
        &["reader type: INT not compatible with writer type: LONG"],
        &["/fields/0/type"],
    ),
    (
        "TestSchemaCompatibility.java testValidateArrayWriterSchema",
        STRING_MAP,
        STRING_ARRAY,
        Kind::TypeMismatch,
        &["reader type: MAP not compatible with writer type: ARRAY"],
        &["/"],
    ),
    (
        MUB,
        INT_UNION,
        INT_STRING_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: STRING"],
        &["/1"],
    ),
    (
        MUB,
        STRING_UNION,
        INT_STRING_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: INT"],
        &["/0"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_RECORD1,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: RECORD"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_RECORD2,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: RECORD"],
        &["/1"],
    ),
    (
        MUB,
        UNION_INT_RECORD1,
        UNION_INT_RECORD2,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: RECORD"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_ENUM1_AB,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: ENUM"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_FIXED_4_BYTES,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: FIXED"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_BOOLEAN,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: BOOLEAN"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        LONG_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: LONG"],
        &["/0"],
    ),
    (
        MUB,
        INT_UNION,
        FLOAT_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: FLOAT"],
        &["/0"],
    ),
    (
        MUB,
        INT_UNION,
        DOUBLE_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: DOUBLE"],
        &["/0"],
    ),
    (
        MUB,
        INT_UNION,
        BYTES_UNION,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: BYTES"],
        &["/0"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_ARRAY_INT,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: ARRAY"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_MAP_INT,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: MAP"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        UNION_INT_NULL,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: NULL"],
        &["/1"],
    ),
    (
        MUB,
        INT_UNION,
        INT_LONG_FLOAT_DOUBLE_UNION,
        Kind::MissingUnionBranch,
        &[
            "reader union lacking writer type: LONG",
            "reader union lacking writer type: FLOAT",
            "reader union lacking writer type: DOUBLE",
        ],
        &["/1", "/2", "/3"],
    ),
    (
        MUB,
        A_DINT_B_DINT_UNION_RECORD1,
        A_DINT_B_DINT_STRING_UNION_RECORD1,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: STRING"],
        &["/fields/1/type/1"],
    ),
    (
        "TestSchemaCompatibility.java testUnionReaderWriterSubsetIncompatibility",
        INT_STRING_UNION,
        r#"["int","string","long"]"#,
        Kind::MissingUnionBranch,
        &["reader union lacking writer type: LONG"],
        &["/2"],
    ),
    (
        MES,
        ENUM1_AB,
        ENUM1_ABC,
        Kind::MissingEnumSymbols,
        &["[C]"],
        &["/symbols"],
    ),
    (
        MES,
        ENUM1_BC,
        ENUM1_ABC,
        Kind::MissingEnumSymbols,
        &["[A]"],
        &["/symbols"],
    ),
    (
        MES,
        RECORD1_WITH_ENUM_AB,
        RECORD1_WITH_ENUM_ABC,
        Kind::MissingEnumSymbols,
        &["[C]"],
        &["/fields/0/type/symbols"],
    ),
    (
        NM,
        ENUM1_AB,
        ENUM2_AB,
        Kind::NameMismatch,
        &["expected: Enum2"],
        &["/name"],
    ),
    (
        NM,
        EMPTY_RECORD2,
        EMPTY_RECORD1,
        Kind::NameMismatch,
        &["expected: Record1"],
        &["/name"],
    ),
    (
        NM,
        FIXED_4_BYTES,
        FIXED_4_ANOTHER_NAME,
        Kind::NameMismatch,
        &["expected: AnotherName"],
        &["/name"],
    ),
    (
        NM,
        A_DINT_B_DENUM_1_RECORD1,
        A_DINT_B_DENUM_2_RECORD1,
        Kind::NameMismatch,
        &["expected: Enum2"],
        &["/fields/1/type/name"],
    ),
    (
        FSM,
        FIXED_4_BYTES,
        FIXED_8_BYTES,
        Kind::FixedSizeMismatch,
        &["expected: 8, found: 4"],
        &["/size"],
    ),
    (
        FSM,
        FIXED_8_BYTES,
        FIXED_4_BYTES,
        Kind::FixedSizeMismatch,
        &["expected: 4, found: 8"],
        &["/size"],
    ),
    (
        FSM,
        A_DINT_B_DFIXED_8_BYTES_RECORD1,
        A_DINT_B_DFIXED_4_BYTES_RECORD1,
        Kind::FixedSizeMismatch,
        &["expected: 4, found: 8"],
        &["/fields/1/type/size"],
    ),
    (
        FSM,
        A_DINT_B_DFIXED_4_BYTES_RECORD1,
        A_DINT_B_DFIXED_8_BYTES_RECORD1,
        Kind::FixedSizeMismatch,
        &["expected: 8, found: 4"],
        &["/fields/1/type/size"],
    ),
    (
        RFMD,
        A_INT_RECORD1,
        EMPTY_RECORD1,
        Kind::ReaderFieldMissingDefaultValue,
        &["a"],
        &["/fields/0"],
    ),
    (
        RFMD,
        A_INT_B_DINT_RECORD1,
        EMPTY_RECORD1,
        Kind::ReaderFieldMissingDefaultValue,
        &["a"],
        &["/fields/0"],
    ),
    (
        "TestSchemaCompatibility.java testValidateSchemaNewField",
        r#"{"type":"record","name":"R","fields":[{"name":"oldfield1","type":"int"},{"name":"newfield1","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"oldfield1","type":"int"},{"name":"oldfield2","type":"string"}]}"#,
        Kind::ReaderFieldMissingDefaultValue,
        &["newfield1"],
        &["/fields/1"],
    ),
    (
        "TestSchemaCompatibility.java RECORD1_WITH_INT vs UNION_INT_RECORD1",
        RECORD1_WITH_INT,
        UNION_INT_RECORD1,
        Kind::TypeMismatch,
        &["reader type: RECORD not compatible with writer type: INT"],
        &["/"],
    ),
];

fn parse(s: &str) -> Schema {
    Schema::parse_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn compatible_pairs_agree_with_apache_avro_java() {
    for (source, reader, writer) in COMPATIBLE {
        let problems = check(&parse(reader), &parse(writer));
        assert!(
            problems.is_empty(),
            "{source}: reader {reader} writer {writer}: {problems:?}"
        );
    }
}

#[test]
fn incompatible_pairs_agree_with_apache_avro_java_kind_message_and_location() {
    for (source, reader, writer, kind, messages, locations) in INCOMPATIBLE {
        let problems = check(&parse(reader), &parse(writer));
        let got: Vec<(Kind, &str, &str)> = problems
            .iter()
            .map(|p| (p.kind, p.message.as_str(), p.location.as_str()))
            .collect();
        let want: Vec<(Kind, &str, &str)> = messages
            .iter()
            .zip(locations.iter())
            .map(|(m, l)| (*kind, *m, *l))
            .collect();
        assert_eq!(got, want, "{source}: reader {reader} writer {writer}");
    }
}

#[test]
fn at_least_forty_pairs_are_ported() {
    assert!(COMPATIBLE.len() + INCOMPATIBLE.len() >= 40);
    assert!(INCOMPATIBLE.len() >= 40, "{}", INCOMPATIBLE.len());
}

/// Each level derives from the reader/writer relation: backward = new reads old, forward =
/// old reads new, full = both, transitive = against every earlier version, not just the last.
#[test]
fn every_level_follows_from_the_ported_pairs() {
    let ok = |new: &str, prev: &[&str], level: Level| {
        let prev: Vec<(String, Schema)> = prev
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("v{}", i + 1), parse(s)))
            .collect();
        check_level(&parse(new), &prev, level).is_empty()
    };
    // Adding a field with a default (A_INT → A_INT_B_DINT): compatible both ways.
    for level in Level::ALL {
        assert!(
            ok(A_INT_B_DINT_RECORD1, &[A_INT_RECORD1], level),
            "{level:?}"
        );
    }
    // Widening int → long (A_INT → A_LONG): backward only (Java: LONG reads INT, INT can't read LONG).
    assert!(ok(A_LONG_RECORD1, &[A_INT_RECORD1], Level::Backward));
    assert!(!ok(A_LONG_RECORD1, &[A_INT_RECORD1], Level::Forward));
    assert!(!ok(A_LONG_RECORD1, &[A_INT_RECORD1], Level::Full));
    // Narrowing long → int: forward only.
    assert!(!ok(A_INT_RECORD1, &[A_LONG_RECORD1], Level::Backward));
    assert!(ok(A_INT_RECORD1, &[A_LONG_RECORD1], Level::Forward));
    // Adding an enum symbol (AB → ABC): backward only.
    assert!(ok(ENUM1_ABC, &[ENUM1_AB], Level::Backward));
    assert!(!ok(ENUM1_ABC, &[ENUM1_AB], Level::Forward));
    assert!(!ok(ENUM1_ABC, &[ENUM1_AB], Level::FullTransitive));
    // Transitive forms look past the latest version: v1 = EMPTY, v2 = A_DINT, v3 = A_INT.
    // A_INT reads A_DINT data but not EMPTY data (field a has no default).
    let history = [EMPTY_RECORD1, A_DINT_RECORD1];
    assert!(ok(A_INT_RECORD1, &history, Level::Backward));
    assert!(!ok(A_INT_RECORD1, &history, Level::BackwardTransitive));
    assert!(ok(A_INT_RECORD1, &history, Level::Full));
    assert!(!ok(A_INT_RECORD1, &history, Level::FullTransitive));
    // Forward transitive: v1 = A_INT, v2 = A_DINT; new = EMPTY. A_DINT reads EMPTY, A_INT does not.
    let history = [A_INT_RECORD1, A_DINT_RECORD1];
    assert!(ok(EMPTY_RECORD1, &history, Level::Forward));
    assert!(!ok(EMPTY_RECORD1, &history, Level::ForwardTransitive));
}
