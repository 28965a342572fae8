"""The artifact store and its layout: where every file Kiln keeps lives, named in one place."""
