from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from dbrestore.backups.writer import BackupWriter
from restoreproject.shop.sample import sample_tables


class Command(BaseCommand):
    help = (
        "Write a deterministic sample backup of about --rows rows over every demo model, in "
        "dbrestore's directory format (manifest.json + one data file per table)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1000, help="Approximate number of rows in all (default 1000).")
        parser.add_argument(
            "--output", "-o", required=True, help="Directory to write (created; must be empty or absent)."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42): same seed, same bytes.")
        parser.add_argument(
            "--compress",
            nargs="?",
            const="gzip",
            default=None,
            choices=["gzip", "zstd"],
            help="Compress the data files: gzip (.jsonl.gz, the default with no value) or zstd (.jsonl.zst).",
        )
        parser.add_argument(
            "--data-format", choices=["jsonl", "json"], default="jsonl", help="JSON Lines (default) or JSON arrays."
        )

    def handle(self, *args, **options):
        output = Path(options["output"])
        if output.exists() and any(output.iterdir()):
            raise CommandError(f"{output}: directory is not empty")
        writer = BackupWriter(output, compress=options["compress"], json_array=options["data_format"] == "json")
        total = 0
        for model, rows in sample_tables(options["rows"], options["seed"]):
            columns = [f.column for f in model._meta.concrete_fields]
            entry = writer.write_table(model=model._meta.label, table=model._meta.db_table, columns=columns, rows=rows)
            total += entry["rows"]
            if options["verbosity"] >= 2:
                self.stdout.write(f"{entry['table']}: {entry['rows']} rows")
        writer.finish()
        self.stdout.write(self.style.SUCCESS(f"Wrote {total} rows in {len(writer.tables)} tables to {output}"))
