// Module placeholder; real files land beside it.
