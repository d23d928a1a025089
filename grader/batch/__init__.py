"""Batch grading of a whole class: discover submissions, grade them in parallel workers, export the class."""
