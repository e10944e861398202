"""`flask sandbox seed-demo`: a believable year of customers, made through the sandbox's clock.

``story`` draws who the customers are and what each does from a seed (pure); ``people`` holds
the names, companies and Stripe's test cards by country it draws from; ``acts`` does one thing
a customer, the operator or a bank does, through Tollgate's services and Stripe's hosted pages;
``run`` moves the sandbox's clock a day at a time, delivering the webhooks it sends to Tollgate
in process, and records usage; ``cli`` is the command.
"""
