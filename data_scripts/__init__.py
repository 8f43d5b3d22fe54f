"""Scripts for the real datasets.

* ``python -m data_scripts.fetch NAME [NAME ...] --root DIR [--source MIRROR_DIR]`` downloads
  datasets (or reads them from a local copy of their sources) into the layout
  ``fairlib.data.load_dataset`` reads;
* ``python -m data_scripts.rehearse --root MIRROR_DIR`` writes a miniature copy of every source in
  its published format, for rehearsals and tests without network.
"""
