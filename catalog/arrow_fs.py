"""A pyarrow filesystem over S3 that writes no folder marker objects (imports pyarrow: load lazily)."""

from __future__ import annotations

from typing import Any

import pyarrow.fs


class NoDirectoryMarkers(pyarrow.fs.FileSystemHandler):
    """S3 without "folder/" marker objects: S3 has no folders, and file-backed servers
    (rclone serve s3) store a marker as a file that then blocks every key below it."""

    def __init__(self, fs: pyarrow.fs.FileSystem) -> None:
        self.fs = fs

    def __reduce__(self) -> tuple[Any, ...]:  # Ray ships the filesystem to its workers
        return (type(self), (self.fs,))

    def get_type_name(self) -> str:
        return "s3-no-markers"

    def normalize_path(self, path: str) -> str:
        return self.fs.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pyarrow.fs.FileInfo]:
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector: pyarrow.fs.FileSelector) -> list[pyarrow.fs.FileInfo]:
        return self.fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        return None  # a folder exists as soon as a file is written below it

    def delete_dir(self, path: str) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete a whole bucket's contents")

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.fs.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        return self.fs.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        return self.fs.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.fs.open_append_stream(path, metadata=metadata)
