"""Deterministic seed data for whatever schema a revision has.

Every table gets N rows and every column a value (so a migration that loses a column's
data has data to lose), generated in SQL from the row number ``i`` and the column's
type: the same schema and N always give the same rows.  Columns filled by the database
itself (serial/identity keys, generated columns) are left to it.  Single-column foreign
keys take values from the referenced table, which is seeded first.

    seed_database(dsn, rows=1000)  # -> {"orders": 1000}
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from psycopg import sql

from gameday.database.migrations_catalog import (
    ColumnSchema,
    SchemaSnapshot,
    TableSchema,
    connect,
    qualified,
    schema_snapshot,
)
from gameday.errors import ConfigError

Expr = Callable[[str, int], str]  # (column name, salt) -> SQL expression over i

# Value generators by base type name (pg_type.typname); ``i`` is the row number.
_BY_TYPE: dict[str, Expr] = {
    "int2": lambda c, s: f"((i * 31 + {s}) % 32000)",
    "int4": lambda c, s: f"((i * 7919 + {s}) % 2000000000)",
    "int8": lambda c, s: f"(i::bigint * 104729 + {s})",
    "float4": lambda c, s: f"(i * 0.5 + {s})",
    "float8": lambda c, s: f"(i * 0.25 + {s})",
    "numeric": lambda c, s: f"((i % 100) + {s % 100} / 100.0)",
    "text": lambda c, s: f"('{c}-' || i)",
    "varchar": lambda c, s: f"('{c}-' || i)",
    "bpchar": lambda c, s: f"('{c}-' || i)",
    "bool": lambda c, s: f"((i + {s}) % 2 = 0)",
    "date": lambda c, s: f"(date '2024-01-01' + (i + {s}) % 3650)",
    "timestamp": lambda c, s: f"(timestamp '2024-01-01' + (i + {s}) * interval '1 minute')",
    "timestamptz": lambda c, s: f"(timestamptz '2024-01-01 00:00:00+00' + (i + {s}) * interval '1 minute')",
    "time": lambda c, s: f"(time '00:00' + (i + {s}) * interval '1 second')",
    "interval": lambda c, s: f"((i + {s}) * interval '1 second')",
    "uuid": lambda c, s: f"md5('{c}' || i)::uuid",
    "json": lambda c, s: f"json_build_object('{c}', i)",
    "jsonb": lambda c, s: f"jsonb_build_object('{c}', i)",
    "bytea": lambda c, s: f"decode(md5('{c}' || i), 'hex')",
    "inet": lambda c, s: "('10.0.' || (i / 256) % 256 || '.' || i % 256)::inet",
}


def _salt(column: str) -> int:
    return zlib.crc32(column.encode()) % 997


def value_expression(table: str, column: str, spec: ColumnSchema, table_schema: TableSchema) -> sql.Composable:
    """A SQL expression over ``i`` giving a value of the column's type."""
    for fk in table_schema.foreign_keys:
        if fk.column == column:
            # the referenced keys, fetched once (an uncorrelated sub-select), cycled through
            ref = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(sql.Identifier(fk.ref_column), qualified(fk.ref_table))
            return sql.SQL("(ARRAY({ref}))[1 + (i - 1) % greatest(1, cardinality(ARRAY({ref})))]").format(ref=ref)
    literal_name = column.replace("'", "''")
    if spec.type_kind == "e":
        # enums: cycle through the labels
        return sql.SQL("(enum_range(NULL::{t}))[1 + i % cardinality(enum_range(NULL::{t}))]").format(
            t=sql.SQL(spec.type))
    make = _BY_TYPE.get(spec.base_type)
    expr = make(literal_name, _salt(column)) if make else "i::text"  # last resort: let the cast try
    if spec.base_type in ("varchar", "bpchar") and "(" in spec.type:
        length = spec.type.rsplit("(", 1)[1].rstrip(")")
        expr = f"right({expr}, {length})"  # keep the distinctive end (the row number)
    return sql.SQL(f"({expr})::") + sql.SQL(spec.type)


def _database_fills(spec: ColumnSchema) -> bool:
    return bool(spec.identity or spec.generated or (spec.default or "").startswith("nextval("))


def insert_statement(table: str, schema: TableSchema, first: int, last: int,
                     columns: list[str] | None = None) -> sql.Composed:
    """INSERT rows first..last into ``table``; only ``columns`` if given (e.g. an older release's)."""
    names = [c for c in (columns or list(schema.columns)) if not _database_fills(schema.columns[c])]
    if not names:
        return sql.SQL("INSERT INTO {} SELECT FROM generate_series({}, {}) AS g(i)").format(
            qualified(table), sql.Literal(first), sql.Literal(last))
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM generate_series({}, {}) AS g(i)").format(
        qualified(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in names),
        sql.SQL(", ").join(value_expression(table, c, schema.columns[c], schema) for c in names),
        sql.Literal(first),
        sql.Literal(last),
    )


def seeding_order(schema: SchemaSnapshot) -> list[str]:
    """Tables with referenced tables first (self-references and cycles keep catalog order)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(table: str) -> None:
        if table in ordered or table in visiting:
            return
        visiting.add(table)
        for fk in schema.tables[table].foreign_keys:
            if fk.ref_table in schema.tables and fk.ref_table != table:
                visit(fk.ref_table)
        ordered.append(table)

    for table in schema.tables:
        visit(table)
    return ordered


def seed_database(dsn: str, rows: int, *, schema: SchemaSnapshot | None = None) -> dict[str, int]:
    """Fill every table with ``rows`` generated rows; returns rows inserted per table."""
    if rows < 1:
        raise ConfigError(f"seed rows must be at least 1, not {rows}", fix="pass --rows 1000")
    schema = schema or schema_snapshot(dsn)
    inserted: dict[str, int] = {}
    with connect(dsn) as conn, conn.transaction():
        for table in seeding_order(schema):
            try:
                cursor = conn.execute(insert_statement(table, schema.tables[table], 1, rows))
            except Exception as exc:  # noqa: BLE001 - any database error here is a seeding limitation
                raise ConfigError(
                    f"cannot seed table {table}: {str(exc).strip().splitlines()[0]}",
                    fix="the generic seeder fills columns by type; check constraints on this table may need real data",
                ) from None
            inserted[table] = cursor.rowcount
    return inserted
