"""Where backup bytes live and how they are wrapped: Django storages, compression, GPG, JSON values."""
