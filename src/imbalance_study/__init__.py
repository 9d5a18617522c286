"""Reference pipeline for studying class imbalance in deep networks.

One module per concept: ``datasets`` (HDF5 files), ``imbalance`` (profiles and imbalanced index
files), ``sampling`` (over/undersampling), ``models``, ``training``, ``scoring``, ``figures``;
``study`` turns a validated config into the grid of runs, ``atomic`` writes files safely.
"""

__version__ = "0.1.0"
