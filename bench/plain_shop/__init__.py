"""A "plain Django" shop: the business steps an order takes in the shop, as one synchronous
view in one transaction, with its own tiny models. The baseline the event backbone's price is
measured against (bench/web_requests.py); it imports nothing of the shop's contexts."""
