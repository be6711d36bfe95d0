"""Identity's pure rules: cleaning an event's identifiers (``cleaning``) and resolving it to a customer
(``resolution``); nothing here touches a database, a broker or HTTP."""
