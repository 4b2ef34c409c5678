from miresga_core.tomlpos import KeyLines

DOC = '''# comment
top = 1
[a]
x = "s # not a comment"
y = [
  1,
  { deep = 2 },
]
"quoted.key" = 3
dotted.inner = 4

[[arr]]
k = 1
[[arr]]
k = 2
[arr.sub]
z = { p = { q = 1 } }
m = """multi
line"""
after = 5
'''


def test_lines_of_keys():
    lines = KeyLines(DOC)
    assert lines.line_of(("top",)) == 2
    assert lines.line_of(("a",)) == 3
    assert lines.line_of(("a", "x")) == 4
    assert lines.line_of(("a", "y", 1, "deep")) == 7
    assert lines.line_of(("a", "quoted.key")) == 9
    assert lines.line_of(("a", "dotted", "inner")) == 10
    assert lines.line_of(("arr", 0, "k")) == 13
    assert lines.line_of(("arr", 1, "k")) == 15
    assert lines.line_of(("arr", 1, "sub", "z", "p", "q")) == 17
    assert lines.line_of(("arr", 1, "sub", "after")) == 20


def test_unknown_path_falls_back_to_nearest_ancestor():
    lines = KeyLines(DOC)
    assert lines.line_of(("arr", 1, "sub", "nope")) == 16
    assert lines.line_of(("nothing",)) is None
