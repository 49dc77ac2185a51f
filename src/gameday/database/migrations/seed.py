"""Deterministic seed data for whatever schema a revision has.

Every table gets N rows and every column a value (so a migration that loses a column's
data has data to lose), generated in SQL from the row number ``i`` and the column's
type: the same schema and N always give the same rows.  Columns filled by the database
itself (serial/identity keys, generated columns) are left to it.

Real schemas refuse naive rows, so each table is seeded by trial, one savepoint per
attempt, and every refusal names what to change:

* a CHECK constraint (the table's or a domain's): values are taken from the constraint
  itself — its literals (``status IN ('new', 'paid')``, ``LIKE '%@%'``), the range its
  comparisons allow (``qty > 0``, ``BETWEEN 1 AND 5``), an order between two columns
  (``ends_at > starts_at``), NULL where the column allows it — one candidate at a time;
* a foreign key, single or composite: rows of the referenced table (seeded first), all
  columns of one key taken from the same referenced row, so a primary key that is also
  a foreign key (a 1:1 table) gets distinct parents; self-references point at another
  row of the same table;
* a unique or primary key: columns are generated from the row number, so they differ.

A table still refused after that is named with the constraint that refused it
(``SeedResult.unseeded``), never fatal: the revision is then checked for schema only
on that table.  The plan that worked is kept (``SeedResult.plans``) so the old-writer
probe builds its fresh row the same way.

    seed_database(dsn, rows=1000).rows  # -> {"orders": 1000}
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors, sql

from gameday.database.migrations.catalog import (
    USER_SCHEMAS,
    ColumnSchema,
    SchemaSnapshot,
    TableSchema,
    connect,
    qualified,
    schema_snapshot,
    table_name,
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
    "citext": lambda c, s: f"('{c}-' || i)",
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
_NUMERIC = {"int2", "int4", "int8", "float4", "float8", "numeric"}
_ATTEMPTS = 24  # inserts tried per table before it is reported unseeded


def _salt(column: str) -> int:
    return zlib.crc32(column.encode()) % 997


@dataclass
class TablePlan:
    """How one table's rows are generated: per-column overrides of the type's generator."""

    values: dict[str, str] = field(default_factory=dict)  # column -> SQL over i (no cast)
    salts: dict[str, int] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)  # candidate keys already used
    last_check: str = ""  # the constraint whose candidate was applied last


@dataclass(frozen=True)
class _Check:
    name: str
    columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef, with VALUE replaced by the column for domains


@dataclass(frozen=True)
class _Key:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass
class _TableRules:
    checks: list[_Check] = field(default_factory=list)
    keys: list[_Key] = field(default_factory=list)  # foreign keys, single and composite
    unique: dict[str, tuple[str, ...]] = field(default_factory=dict)  # constraint/index -> columns


_CONSTRAINTS = f"""
SELECT n.nspname, c.relname, con.conname, con.contype, pg_get_constraintdef(con.oid),
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord)::text[],
       rn.nspname, r.relname,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)::text[]
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class r ON r.oid = con.confrelid LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE con.contype IN ('c', 'f', 'u', 'p') AND {USER_SCHEMAS}"""

_UNIQUE_INDEXES = f"""
SELECT n.nspname, c.relname, ic.relname,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) k(num) JOIN pg_attribute a
             ON a.attrelid = i.indrelid AND a.attnum = k.num)::text[]
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indisunique AND NOT i.indisprimary AND {USER_SCHEMAS}"""

_DOMAIN_CHECKS = f"""
SELECT n.nspname, c.relname, a.attname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_constraint con ON con.contypid = a.atttypid AND con.contype = 'c'
WHERE a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMAS}"""


def _rules(conn: psycopg.Connection[Any]) -> dict[str, _TableRules]:
    rules: dict[str, _TableRules] = {}
    for schema, rel, con, kind, definition, cols, ref_schema, ref_rel, ref_cols in conn.execute(_CONSTRAINTS):
        table = rules.setdefault(table_name(schema, rel), _TableRules())
        if kind == "c":
            table.checks.append(_Check(con, tuple(cols), definition))
        elif kind == "f":
            table.keys.append(_Key(tuple(cols), table_name(ref_schema, ref_rel), tuple(ref_cols)))
        else:
            table.unique[con] = tuple(cols)
    for schema, rel, index, cols in conn.execute(_UNIQUE_INDEXES):
        rules.setdefault(table_name(schema, rel), _TableRules()).unique.setdefault(index, tuple(cols))
    for schema, rel, column, con, definition in conn.execute(_DOMAIN_CHECKS):
        body = re.sub(r"\bVALUE\b", f'"{column}"', definition)
        rules.setdefault(table_name(schema, rel), _TableRules()).checks.append(_Check(con, (column,), body))
    return rules


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(name: str) -> str:
    schema, _, relation = name.rpartition(".")
    return f"{_ident(schema or 'public')}.{_ident(relation)}"


def _default_value(column: str, spec: ColumnSchema, salt: int) -> str:
    literal_name = column.replace("'", "''")
    if spec.type_kind == "e":  # enums: cycle through the labels
        return f"(enum_range(NULL::{spec.type}))[1 + i % cardinality(enum_range(NULL::{spec.type}))]"
    if spec.base_type.startswith("_"):  # arrays: empty
        return "'{}'"
    make = _BY_TYPE.get(spec.base_type)
    expr = make(literal_name, salt) if make else "i::text"  # last resort: let the cast try
    if spec.base_type in ("varchar", "bpchar") and "(" in spec.type:
        length = spec.type.rsplit("(", 1)[1].rstrip(")")
        expr = f"right({expr}, {length})"  # keep the distinctive end (the row number)
    return expr


def _key_value(key: _Key, column: str, table: str) -> str:
    """Column ``column`` of ``key`` taken from referenced row k (all columns from the same row)."""
    order = ", ".join(map(_ident, key.ref_columns))
    ref_col = key.ref_columns[key.columns.index(column)]
    rows = f"ARRAY(SELECT {_ident(ref_col)} FROM {_table(key.ref_table)} ORDER BY {order})"
    if key.ref_table == table:
        return "NULL"  # the rows do not exist yet: filled in by _link_self_references
    return f"({rows})[1 + (i - 1) % greatest(1, cardinality({rows}))]"


def _expressions(table: str, schema: TableSchema, rules: _TableRules, plan: TablePlan,
                 names: list[str]) -> list[sql.Composable]:
    out: list[sql.Composable] = []
    for column in names:
        spec = schema.columns[column]
        key = next((k for k in rules.keys if column in k.columns), None)
        if column in plan.values:
            expr = plan.values[column]
        elif key is not None:
            expr = _key_value(key, column, table)
        else:
            expr = _default_value(column, spec, plan.salts.get(column, _salt(column)))
        out.append(sql.SQL(f"({expr})::") + sql.SQL(spec.type))
    return out


def _database_fills(spec: ColumnSchema) -> bool:
    return bool(spec.identity or spec.generated or (spec.default or "").startswith("nextval("))


def _insert(table: str, schema: TableSchema, rules: _TableRules, plan: TablePlan, first: int, last: int,
            columns: list[str] | None = None, returning: tuple[str, ...] = ()) -> sql.Composed:
    names = [c for c in (columns or list(schema.columns)) if not _database_fills(schema.columns[c])]
    ret: sql.Composable = sql.SQL("")
    if returning:
        ret = sql.SQL(" RETURNING {}").format(sql.SQL(", ").join(map(sql.Identifier, returning)))
    if not names:
        return sql.SQL("INSERT INTO {} SELECT FROM generate_series({}, {}) AS g(i){}").format(
            qualified(table), sql.Literal(first), sql.Literal(last), ret)
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM generate_series({}, {}) AS g(i){}").format(
        qualified(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in names),
        sql.SQL(", ").join(_expressions(table, schema, rules, plan, names)),
        sql.Literal(first),
        sql.Literal(last),
        ret,
    )


def seeding_order(schema: SchemaSnapshot, rules: dict[str, _TableRules]) -> list[str]:
    """Tables with referenced tables first, by every foreign key, single or composite
    (self-references and cycles keep catalog order)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(table: str) -> None:
        if table in ordered or table in visiting:
            return
        visiting.add(table)
        for key in rules.get(table, _TableRules()).keys:
            if key.ref_table in schema.tables and key.ref_table != table:
                visit(key.ref_table)
        ordered.append(table)

    for table in schema.tables:
        visit(table)
    return ordered


# --- candidates: what to try when a CHECK constraint refuses a row ---------------------------

_STRINGS = re.compile(r"'((?:[^']|'')*)'")
_COMPARISON = re.compile(
    r'\(*"?(?P<col>\w+)"?\)*(?:::[\w ]+)?\s*(?P<op>>=|<=|>|<|=)\s*\(*\'?(?P<num>-?\d+(?:\.\d+)?)\'?\)*')
_REVERSED = re.compile(
    r'\(*\'?(?P<num>-?\d+(?:\.\d+)?)\'?\)*(?:::[\w ]+)?\s*(?P<op>>=|<=|>|<)\s*\(*"?(?P<col>\w+)"?\)*')
_COLUMNS_ORDER = re.compile(r'\(*"?(?P<a>\w+)"?\)*\s*(?P<op>>=|<=|>|<)\s*\(*"?(?P<b>\w+)"?\)*')
_FLIP = {">": "<", "<": ">", ">=": "<=", "<=": ">="}


def _bounds(check: _Check, column: str) -> tuple[float | None, float | None]:
    low: float | None = None
    high: float | None = None
    found = [(m["op"], float(m["num"])) for m in _COMPARISON.finditer(check.definition) if m["col"] == column]
    found += [(_FLIP[m["op"]], float(m["num"])) for m in _REVERSED.finditer(check.definition) if m["col"] == column]
    for op, number in found:
        if op in (">", ">="):
            bound = number + (1 if op == ">" else 0)
            low = bound if low is None else max(low, bound)
        elif op in ("<", "<="):
            bound = number - (1 if op == "<" else 0)
            high = bound if high is None else min(high, bound)
        elif op == "=":
            low = high = number
    return low, high


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _candidates(check: _Check, schema: TableSchema) -> list[tuple[str, dict[str, str | None], dict[str, int]]]:
    """(key, values, salts) to try in order; a value None means NULL."""
    out: list[tuple[str, dict[str, str | None], dict[str, int]]] = []
    columns = [c for c in check.columns if c in schema.columns]
    if len(columns) == 1:
        column = columns[0]
        spec = schema.columns[column]
        strings = [s.replace("''", "'") for s in _STRINGS.findall(check.definition)]
        likes = [re.sub("_", "b", re.sub("%", "a", s)) for s in strings if "%" in s or "_" in s]
        if strings:
            cycle = ", ".join(_literal(s) for s in strings)
            out.append((f"{check.name}:cycle", {column: f"(ARRAY[{cycle}])[1 + (i - 1) % {len(strings)}]"}, {}))
        for like in likes:
            out.append((f"{check.name}:like:{like}", {column: f"({_literal(like)} || i)"}, {}))
            out.append((f"{check.name}:likeconst:{like}", {column: _literal(like)}, {}))
        low, high = _bounds(check, column)
        if spec.base_type in _NUMERIC and (low is not None or high is not None):
            if low is not None and high is not None:
                span = max(1, int(high - low) + 1)
                out.append((f"{check.name}:range", {column: f"({_number(low)} + (i - 1) % {span})"}, {}))
            elif low is not None:
                out.append((f"{check.name}:above", {column: f"({_number(low)} + i - 1)"}, {}))
            elif high is not None:
                out.append((f"{check.name}:below", {column: f"({_number(high)} - i + 1)"}, {}))
        if spec.base_type in ("varchar", "text", "bpchar", "citext"):
            out.append((f"{check.name}:short", {column: f"right('x' || i, {3})"}, {}))
        for s in strings:
            out.append((f"{check.name}:const:{s}", {column: _literal(s)}, {}))
        numbers = [float(n) for n in re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", check.definition)]
        for n in numbers:
            for value in (n, n + 1, n - 1):
                out.append((f"{check.name}:num:{value}", {column: _number(value)}, {}))
    else:
        for m in _COLUMNS_ORDER.finditer(check.definition):
            a, b, op = m["a"], m["b"], m["op"]
            if a in schema.columns and b in schema.columns:
                greater, lesser = (a, b) if op in (">", ">=") else (b, a)
                # the same generator with a larger salt gives a later value on every row
                out.append((f"{check.name}:order:{greater}", {lesser: None, greater: None},
                            {lesser: 0, greater: 500}))
    nullable = [c for c in columns if schema.columns[c].nullable]
    if nullable:
        out.append((f"{check.name}:null", {c: "NULL" for c in nullable}, {}))
    return out


def _adjust_for_check(plan: TablePlan, check: _Check, schema: TableSchema) -> bool:
    """Apply the next untried candidate for ``check``; False when none is left."""
    for key, values, salts in _candidates(check, schema):
        if key in plan.tried:
            continue
        plan.tried.add(key)
        for column, value in values.items():
            if value is None:
                plan.values.pop(column, None)
            else:
                plan.values[column] = value
        plan.salts.update(salts)
        return True
    return False


def _adjust_for_unique(plan: TablePlan, columns: tuple[str, ...]) -> bool:
    """Make a key's columns differ per row: drop overrides on them that do not follow the row number."""
    changed = False
    for column in columns:
        value = plan.values.get(column)
        if value is not None and (not re.search(r"\bi\b", value) or "ARRAY[" in value):
            del plan.values[column]
            changed = True
    key = "unique:" + ",".join(columns)
    if changed and key not in plan.tried:
        plan.tried.add(key)
        return True
    return False


def _constraint_of(exc: psycopg.Error) -> str:
    return exc.diag.constraint_name or ""


def _link_self_references(conn: psycopg.Connection[Any], table: str, rules: _TableRules,
                          schema: TableSchema) -> None:
    """Point each row's self-reference at the row before it (by key), where it is nullable."""
    for key in rules.keys:
        if key.ref_table != table or len(key.columns) != 1 or not schema.columns[key.columns[0]].nullable:
            continue
        column, ref = key.columns[0], key.ref_columns[0]
        conn.execute(sql.SQL(
            "UPDATE {t} AS c SET {col} = p.prev FROM (SELECT ctid AS row_id, lag({ref}) OVER (ORDER BY {ref}) AS prev"
            " FROM {t}) AS p WHERE c.ctid = p.row_id AND p.prev IS NOT NULL").format(
            t=qualified(table), col=sql.Identifier(column), ref=sql.Identifier(ref)))


def _seed_table(conn: psycopg.Connection[Any], table: str, schema: TableSchema, rules: _TableRules,
                rows: int) -> tuple[TablePlan, int | str]:
    """Insert ``rows`` rows; returns the plan and the row count, or the reason it could not."""
    plan = TablePlan()
    checks = {c.name: c for c in rules.checks}
    reason = ""
    for _ in range(_ATTEMPTS):
        try:
            with conn.transaction():
                cursor = conn.execute(_insert(table, schema, rules, plan, 1, rows))
                _link_self_references(conn, table, rules, schema)
            return plan, cursor.rowcount
        except errors.CheckViolation as exc:
            name = _constraint_of(exc)
            reason = f"constraint {name}: {first_line(exc)}"
            if name in checks and _adjust_for_check(plan, checks[name], schema):
                plan.last_check = name
                continue
        except errors.UniqueViolation as exc:
            name = _constraint_of(exc)
            reason = f"constraint {name}: {first_line(exc)}"
            if name in rules.unique and _adjust_for_unique(plan, rules.unique[name]):
                continue
        except errors.NotNullViolation as exc:
            column = exc.diag.column_name or ""
            key = next((k for k in rules.keys if column in k.columns), None)
            reason = (f"column {column} is NOT NULL and references {key.ref_table}, which has no rows"
                      if key else f"column {column}: {first_line(exc)}")
            if column in plan.values and plan.values[column] == "NULL":
                del plan.values[column]
                plan.tried.add(f"notnull:{column}")
                continue
        except psycopg.Error as exc:
            name = _constraint_of(exc)
            reason = (f"constraint {name}: " if name else "") + first_line(exc)
            if plan.last_check in checks and _adjust_for_check(plan, checks[plan.last_check], schema):
                continue  # the candidate itself was refused (a value that does not cast): the next one
        break
    return plan, reason or "no candidate values satisfied its constraints"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class SeedResult:
    rows: dict[str, int] = field(default_factory=dict)  # rows inserted per table (seeded tables only)
    unseeded: dict[str, str] = field(default_factory=dict)  # table -> one-line reason
    plans: dict[str, TablePlan] = field(default_factory=dict)  # how each seeded table's rows were made


def seed_database(dsn: str, rows: int, *, schema: SchemaSnapshot | None = None) -> SeedResult:
    """Fill every table with ``rows`` generated rows; a table that cannot be filled is named, not fatal."""
    if rows < 1:
        raise ConfigError(f"seed rows must be at least 1, not {rows}", fix="pass --rows 1000")
    schema = schema or schema_snapshot(dsn)
    result = SeedResult()
    with connect(dsn) as conn, conn.transaction():
        rules = _rules(conn)
        for table in seeding_order(schema, rules):
            plan, outcome = _seed_table(conn, table, schema.tables[table], rules.get(table, _TableRules()), rows)
            if isinstance(outcome, str):
                result.unseeded[table] = outcome
            else:
                result.rows[table], result.plans[table] = outcome, plan
    return result


class ProbeInconclusive(Exception):
    """The probe could not build its prerequisites; the reason is its message."""


@dataclass
class ProbeRows:
    """Fresh rows for the old-writer probe: numbered after the seeded ones, parents created first."""

    conn: psycopg.Connection[Any]
    schema: SchemaSnapshot  # the previous release's schema
    rows: int
    plans: dict[str, TablePlan] = field(default_factory=dict)
    rules: dict[str, _TableRules] = field(default_factory=dict)
    _next: int = 0

    def __post_init__(self) -> None:
        if not self.rules:
            self.rules = _rules(self.conn)

    def insert(self, table: str, columns: list[str] | None = None, *, depth: int = 0,
               returning: tuple[str, ...] = ()) -> tuple[Any, ...]:
        """Insert one fresh row into ``table`` (only ``columns``, as the previous release writes it)."""
        spec = self.schema.tables[table]
        rules = self.rules.get(table, _TableRules())
        plan = TablePlan(dict(self.plans[table].values), dict(self.plans[table].salts)) \
            if table in self.plans else TablePlan()
        wanted = columns or list(spec.columns)
        for key in rules.keys:
            if key.ref_table == table or not any(c in wanted for c in key.columns):
                continue
            if key.ref_table not in self.schema.tables or depth > 4:
                raise ProbeInconclusive(f"no fresh parent row for {', '.join(key.columns)} in {key.ref_table}")
            try:
                with self.conn.transaction():
                    parent = self.insert(key.ref_table, depth=depth + 1, returning=key.ref_columns)
            except psycopg.Error as exc:
                raise ProbeInconclusive(f"could not add a parent row to {key.ref_table}: {first_line(exc)}") from None
            for column, value in zip(key.columns, parent, strict=True):
                plan.values[column] = "NULL" if value is None else _literal(str(value))
        for key in rules.keys:  # a self-reference: point at an existing row
            if key.ref_table == table:
                for column, ref in zip(key.columns, key.ref_columns, strict=True):
                    plan.values.setdefault(column, f"(SELECT {_ident(ref)} FROM {_table(table)} ORDER BY 1 LIMIT 1)")
        self._next += 1
        i = self.rows + self._next
        cursor = self.conn.execute(_insert(table, spec, rules, plan, i, i, wanted, returning))
        return tuple(cursor.fetchone() or ()) if returning else ()
