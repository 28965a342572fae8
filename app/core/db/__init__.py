"""The SQL database: tables, engines and sessions, migrations."""
