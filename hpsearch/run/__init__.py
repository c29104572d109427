"""Running a sweep: the master, the workers, the launchers that start workers, devices, progress.

The master (`master`) plans stages with `hpsearch.search`, writes them to the journal, starts and
replaces workers through a launcher (`launchers.local`, `launchers.slurm`) and prints the live
display (`progress`) and the stage summaries (through `hpsearch.report`). A worker (`worker`)
claims trials from the store, picks a device (`devices`) and calls a trainable. May import every
layer below it: `report`, `trainables`, `store`, `search`, `errors`, `gcpause`; never `cli`.
"""
