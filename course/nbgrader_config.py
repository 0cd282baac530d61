"""nbgrader's settings for this course; run nbgrader from this folder (see README.md)."""

import os

c = get_config()  # noqa: F821 (nbgrader provides it)

c.CourseDirectory.course_id = "convviz"
# The source folders also hold each notebook as a jupytext script, with the solutions: never release it.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py", "jupytext.toml"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
c.Execute.timeout = 300  # seconds per cell; every assignment runs in well under a minute on a CPU
# The exchange (release_assignment, fetch, submit, collect) stays inside this course folder, not in
# /usr/local/share/nbgrader/exchange. On a shared server, point it at a folder every student can reach.
c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
