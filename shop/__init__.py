"""The shop as a whole: the one app allowed to know every context.

The contexts (orders, stock, payments, shipments) meet only through events, and `backbone`
knows none of them; what needs all of them at once lives here: the demo data
(`manage.py seed_demo`) and the demo tour (`manage.py demo`).
"""
