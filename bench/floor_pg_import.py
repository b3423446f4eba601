"""The floor for a CSV import into PostgreSQL: the least a deduplicating import must do.

COPY the file into an unindexed staging table (the server parses the CSV), then one
INSERT ... SELECT DISTINCT ON (lower(email)) ... ON CONFLICT DO NOTHING into a table with a
unique index on lower(email). No validation, no reporting.

    python bench/floor_pg_import.py FILE.csv POSTGRES_URL SCHEMA
"""

from __future__ import annotations

import sys
import time

import psycopg


def main() -> None:
    path, url, schema = sys.argv[1:4]
    url = url.replace("postgresql+psycopg://", "postgresql://")
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute(
            "CREATE TABLE s (id bigserial PRIMARY KEY, email text NOT NULL, name text, status text)"
        )
        conn.execute("CREATE UNIQUE INDEX s_email ON s (lower(email))")
        conn.execute("CREATE TEMP TABLE staging (email text, name text)")
        with (
            open(path, "rb") as f,
            conn.cursor().copy(
                "COPY staging (email, name) FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while data := f.read(1 << 20):
                copy.write(data)
        conn.execute(
            "INSERT INTO s (email, name, status) SELECT DISTINCT ON (lower(email)) email, name, "
            "'active' FROM staging ON CONFLICT DO NOTHING"
        )
        conn.commit()
    print(f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
