"""Directory files: HSDS 3.0-style JSON and CSV, validation reports, all-or-nothing import.

read_file() turns a file into a validated DirectoryPublic or a list of Problems;
import_directory() writes one inside the caller's transaction; export_directory() and
generate_file() write files. See docs/directory.md for the formats and rules.
"""

from directory.io.problems import DirectoryFileError, Problem, ValidationFailed, format_problems
from directory.io.transfer import (
    ImportSummary,
    LoadedFile,
    detect_format,
    export_directory,
    import_directory,
    import_file,
    read_file,
    write_file,
)

__all__ = [
    "DirectoryFileError",
    "ImportSummary",
    "LoadedFile",
    "Problem",
    "ValidationFailed",
    "detect_format",
    "export_directory",
    "format_problems",
    "import_directory",
    "import_file",
    "read_file",
    "write_file",
]
