"""One build, as stages that return frozen results, in the order data flows (see ``run.py``):

request -> resolve -> plan -> fetch -> unpack (+ patch) -> images -> build (+ diagnose)
-> repair -> smoke -> gate -> sign -> publish (``factory.index``) -> record.
"""
