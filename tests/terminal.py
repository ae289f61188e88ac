"""What a terminal shows after a program wrote ``output`` to it: enough of a terminal for progress bars."""

from __future__ import annotations


def screen(output: str) -> list[str]:
    """The lines on screen: ``\\r`` goes back to the start of the line, ``\\n`` starts a new one, any other
    character overwrites the one under the cursor. Trailing blanks are dropped, as on a screen."""
    lines: list[str] = []
    line: list[str] = []
    column = 0
    for char in output:
        if char == "\n":
            lines.append("".join(line).rstrip())
            line, column = [], 0
        elif char == "\r":
            column = 0
        else:
            if column < len(line):
                line[column] = char
            else:
                line.append(char)
            column += 1
    if "".join(line).strip():
        lines.append("".join(line).rstrip())
    return lines
