"""Laptop and CI tools: the operator CLI (`cli`, with its pure plans in `operator_plan` and its subprocess and SSH
side in `operator_host`), `drift` (a stack's release against what hosts run), and the direct build/ship path the
bench measures (`build`, `ship`). Never shipped to hosts; never imports pulumi (the CLI runs the `pulumi` command).
"""
