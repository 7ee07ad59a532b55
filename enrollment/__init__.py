"""Adding and removing people's faces and fingers, with quality checks.

Filled in by the door issue.
"""
