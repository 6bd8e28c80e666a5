"""Experiments: named families of runs that differ in one or two factors, and their verdicts.

``plan`` turns a request (kind, model, factors) into arms; ``cost`` prices them on this device;
``launch`` records and queues them; ``measure`` times each finished arm's inference once;
``results`` gathers the arms' numbers; ``verdicts`` decides the report's claims from them;
``export`` writes CSV and Markdown.
"""
