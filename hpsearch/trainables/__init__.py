"""What a worker trains: the layer above the sweep directory (store) and the search decisions.

Owns the `Trial` handle (the trainables' contract: report a metric per epoch, save and load
checkpoints, stop when told), the built-in classifier and its batched population training, the
`python` and `command` trainables that run the user's code, the no-op trainable, and their data
sets (bundled digits, spiral, npz, CIFAR-10). May import `hpsearch.store`, `hpsearch.search`,
`hpsearch.errors` and `hpsearch.gcpause`; never `run`, `report` or `cli`. The built-ins' settings
and defaults live in `hpsearch.search.builtins`, because validating a sweep file needs them.
"""
