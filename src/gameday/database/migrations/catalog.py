"""What a database *is*, read from the catalog: schema snapshots, schema diffs, data checksums.

A schema snapshot lists tables (columns with type, nullability, default, identity,
generation; primary key), indexes, constraints, sequences, views and enum types, all
read from pg_catalog.  ``alembic_version`` is left out: it is the migration tool's
bookkeeping, not the service's schema.  Columns are compared by name, not position:
a downgrade that re-adds a dropped column puts it last, and no query that names its
columns can tell.

Data checksums are computed in SQL, one scan per table, and are independent of row
order and column order: a table's checksum is the sum of md5(row as jsonb) over its
rows; a column's checksum is the sum of md5([primary key, value]) so values that move
between rows are caught too (tables without a primary key hash the value alone).  The
backup checksums (gameday.database.checksums) hash ``t::text``, which follows column
order, so a lossless drop+re-add would look changed there; hence these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from gameday.database.dsn import Dsn

VERSION_TABLE = "alembic_version"
USER_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


@dataclass(frozen=True)
class ColumnSchema:
    type: str  # format_type(), e.g. "character varying(20)"
    nullable: bool
    default: str | None = None
    identity: str = ""  # "" | "a" (always) | "d" (by default)
    generated: str = ""  # "" | "s" (stored)
    base_type: str = ""  # typname after resolving domains: what the seeder generates
    type_kind: str = "b"  # pg_type.typtype: b base, e enum, d domain, c composite

    def describe(self) -> str:
        text = self.type + ("" if self.nullable else " NOT NULL")
        return text + (f" DEFAULT {self.default}" if self.default else "")


@dataclass(frozen=True)
class TableSchema:
    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemaSnapshot:
    tables: dict[str, TableSchema] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)  # name -> CREATE INDEX ...
    constraints: dict[str, str] = field(default_factory=dict)  # table.name -> definition
    sequences: frozenset[str] = frozenset()
    views: dict[str, str] = field(default_factory=dict)
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class SchemaDiff:
    """before → after, as lists an engineer can read."""

    tables_added: list[str] = field(default_factory=list)
    tables_dropped: list[str] = field(default_factory=list)
    columns_added: list[tuple[str, str, ColumnSchema]] = field(default_factory=list)
    columns_dropped: list[tuple[str, str, ColumnSchema]] = field(default_factory=list)
    columns_changed: list[tuple[str, str, ColumnSchema, ColumnSchema]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # indexes, constraints, sequences, views, types

    @property
    def empty(self) -> bool:
        return not self.lines()

    def lines(self) -> list[str]:
        out = [f"table {t} added" for t in self.tables_added]
        out += [f"table {t} dropped" for t in self.tables_dropped]
        out += [f"column {t}.{c} added ({s.describe()})" for t, c, s in self.columns_added]
        out += [f"column {t}.{c} dropped (was {s.describe()})" for t, c, s in self.columns_dropped]
        out += [f"column {t}.{c} changed: {a.describe()} -> {b.describe()}" for t, c, a, b in self.columns_changed]
        return out + self.other


@dataclass(frozen=True)
class TableData:
    rows: int
    checksum: str
    columns: dict[str, str]


@dataclass(frozen=True)
class DataSnapshot:
    tables: dict[str, TableData]

    def rows(self, table: str) -> int:
        return self.tables[table].rows if table in self.tables else 0


@dataclass
class DataDiff:
    rows_changed: dict[str, tuple[int, int]] = field(default_factory=dict)
    columns_changed: list[str] = field(default_factory=list)  # "table.column"

    @property
    def empty(self) -> bool:
        return not self.rows_changed and not self.columns_changed

    def lines(self) -> list[str]:
        out = [f"{t}: {a} rows -> {b} rows" for t, (a, b) in self.rows_changed.items()]
        return out + [f"{c}: values differ" for c in self.columns_changed]


def connect(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(Dsn.parse(dsn).conninfo(), autocommit=True, connect_timeout=10)
    conn.execute("SET TIME ZONE 'UTC'")  # jsonb renders timestamptz in the session zone
    return conn


def table_name(schema: str, relation: str) -> str:
    """How gameday names a table: bare in public, schema-qualified elsewhere."""
    return relation if schema == "public" else f"{schema}.{relation}"


def qualified(name: str) -> sql.Identifier:
    schema, _, relation = name.rpartition(".")
    return sql.Identifier(schema or "public", relation)


_COLUMNS = f"""
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       coalesce(bt.typname, t.typname), coalesce(bt.typtype, t.typtype)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {USER_SCHEMAS}
ORDER BY n.nspname, c.relname, a.attnum"""

_PRIMARY_KEYS = f"""
SELECT n.nspname, c.relname, array_agg(a.attname ORDER BY k.ord)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND {USER_SCHEMAS} GROUP BY n.nspname, c.relname"""

_INDEXES = f"""
SELECT n.nspname, t.relname, ic.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace WHERE {USER_SCHEMAS}"""

_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {USER_SCHEMAS}"""

_RELATIONS = f"""
SELECT n.nspname, c.relname, c.relkind, CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'S', 'v', 'm') AND {USER_SCHEMAS}"""

_ENUMS = f"""
SELECT n.nspname, t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {USER_SCHEMAS} GROUP BY n.nspname, t.typname"""


def schema_snapshot(dsn: str) -> SchemaSnapshot:
    """The schema of the database at ``dsn``, alembic_version excluded."""
    with connect(dsn) as conn:
        columns: dict[str, dict[str, ColumnSchema]] = {}
        sequences, views = set(), {}
        for schema, rel, kind, view in conn.execute(_RELATIONS):
            name = table_name(schema, rel)
            if kind in ("r", "p") and name != VERSION_TABLE:
                columns.setdefault(name, {})
            elif kind == "S":
                sequences.add(name)
            elif kind in ("v", "m"):
                views[name] = " ".join(view.split())
        for schema, rel, col, typ, nullable, default, identity, generated, base, kind in conn.execute(_COLUMNS):
            if table_name(schema, rel) in columns:
                columns[table_name(schema, rel)][col] = ColumnSchema(
                    typ, nullable, default, identity or "", generated or "", base, kind
                )
        keys = {table_name(s, r): tuple(cols) for s, r, cols in conn.execute(_PRIMARY_KEYS)}
        indexes = {table_name(s, i): d for s, t, i, d in conn.execute(_INDEXES) if table_name(s, t) != VERSION_TABLE}
        constraints = {f"{table_name(s, r)}.{con}": definition for s, r, con, definition in conn.execute(_CONSTRAINTS)
                       if table_name(s, r) != VERSION_TABLE}
        enums = {table_name(s, t): tuple(labels) for s, t, labels in conn.execute(_ENUMS)}
    tables = {
        name: TableSchema(cols, keys.get(name, ()))
        for name, cols in sorted(columns.items())
    }
    return SchemaSnapshot(tables, indexes, constraints, frozenset(sequences), views, enums)


def diff_schema(before: SchemaSnapshot, after: SchemaSnapshot) -> SchemaDiff:
    diff = SchemaDiff()
    diff.tables_added = sorted(set(after.tables) - set(before.tables))
    diff.tables_dropped = sorted(set(before.tables) - set(after.tables))
    for table in sorted(set(before.tables) & set(after.tables)):
        old, new = before.tables[table], after.tables[table]
        diff.columns_added += [(table, c, new.columns[c]) for c in new.columns if c not in old.columns]
        diff.columns_dropped += [(table, c, old.columns[c]) for c in old.columns if c not in new.columns]
        diff.columns_changed += [
            (table, c, old.columns[c], new.columns[c])
            for c in old.columns
            if c in new.columns and old.columns[c] != new.columns[c]
        ]
        if old.primary_key != new.primary_key:
            diff.other.append(f"primary key of {table}: {old.primary_key} -> {new.primary_key}")
    for kind, old_map, new_map in (
        ("index", before.indexes, after.indexes),
        ("constraint", before.constraints, after.constraints),
        ("view", before.views, after.views),
        ("enum type", before.enums, after.enums),
        ("sequence", dict.fromkeys(before.sequences, ""), dict.fromkeys(after.sequences, "")),
    ):
        diff.other += _mapping_diff(kind, old_map, new_map)
    return diff


def _mapping_diff(kind: str, before: dict, after: dict) -> list[str]:  # type: ignore[type-arg]
    out = [f"{kind} {k} added" for k in sorted(set(after) - set(before))]
    out += [f"{kind} {k} dropped" for k in sorted(set(before) - set(after))]
    out += [f"{kind} {k} changed: {before[k]} -> {after[k]}" for k in sorted(set(before) & set(after))
            if before[k] != after[k]]
    return out


def _hash(expr: sql.Composable) -> sql.Composable:
    # 64 bits of md5 as a signed bigint; sum() over bigint is numeric, so it never overflows
    return sql.SQL("coalesce(sum(('x' || substr(md5({}::text), 1, 16))::bit(64)::bigint), 0)::text").format(expr)


def data_snapshot(dsn: str, schema: SchemaSnapshot | None = None) -> DataSnapshot:
    """Row counts and order-independent checksums, per table and per column."""
    schema = schema or schema_snapshot(dsn)
    tables: dict[str, TableData] = {}
    with connect(dsn) as conn:
        for name, table in schema.tables.items():
            key = [sql.SQL("t.{}").format(sql.Identifier(c)) for c in table.primary_key]
            names = list(table.columns)
            per_column = [
                _hash(sql.SQL("jsonb_build_array({})").format(
                    sql.SQL(", ").join([*key, sql.SQL("t.{}").format(sql.Identifier(c))])))
                for c in names
            ]
            query = sql.SQL("SELECT count(*), {} {} FROM {} AS t").format(
                _hash(sql.SQL("to_jsonb(t)")),
                sql.SQL("").join(sql.SQL(", {}").format(p) for p in per_column),
                qualified(name),
            )
            row = conn.execute(query).fetchone()
            assert row is not None
            tables[name] = TableData(int(row[0]), row[1], dict(zip(names, row[2:], strict=True)))
    return DataSnapshot(tables)


def diff_data(before: DataSnapshot, after: DataSnapshot) -> DataDiff:
    """Differences in tables and columns present on both sides (the schema diff covers the rest)."""
    diff = DataDiff()
    for table in sorted(set(before.tables) & set(after.tables)):
        old, new = before.tables[table], after.tables[table]
        if old.rows != new.rows:
            diff.rows_changed[table] = (old.rows, new.rows)
        changed = [f"{table}.{c}" for c in old.columns if c in new.columns and old.columns[c] != new.columns[c]]
        same_columns = set(old.columns) == set(new.columns)
        if not changed and same_columns and old.checksum != new.checksum:
            changed = [f"{table}.*"]  # rows differ though no single column does (cannot happen with a key)
        diff.columns_changed += changed
    return diff
