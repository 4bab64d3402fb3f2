"""The seven ingestion workflows shipped with hmco, as UIS specs (see hmco.schedule.catalogue)."""
