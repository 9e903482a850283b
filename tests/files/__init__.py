"""``dbrestore.files``: backups in Django storages (S3 through a real moto server), GPG and zstd."""
