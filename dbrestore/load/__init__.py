"""Loading one table: read, convert, write (ORM chain or COPY), every row counted once."""
