"""Where frames come from: camera entities and upload folders."""
