import io

from directory.progress import TerminalProgress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run(stream, total, min_total=100):
    progress = TerminalProgress(stream=stream, min_total=min_total)
    progress.start("import", total)
    for _ in range(total):
        progress.advance()
    progress.finish()
    return stream.getvalue()


def test_a_log_gets_a_plain_line_every_ten_percent():
    lines = run(io.StringIO(), 1000).splitlines()
    assert lines[0] == "import: 0% (0/1000)"
    assert lines[-1] == "import: 100% (1000/1000)"
    assert len(lines) == 11


def test_a_terminal_gets_one_bar_redrawn_in_place():
    out = run(Terminal(), 1000)
    assert out.count("\n") == 1
    assert out.rstrip().endswith("[##############################] 1000/1000 100%")
    assert out.count("\r") <= 101, "redrawn only when the percentage changes"


def test_small_files_show_no_progress_at_all():
    assert run(io.StringIO(), 50) == ""
