"""radcheck: the self-test of the RADIUS engine, a supervised program of its own.

It sends an Access-Request to the engine every ``[Self Test] Test_Frequency_sec``,
restarts the engine through supervisor after ``Errors_Before_Restart``
consecutive failures, and mails ``[Global] last_resort_email``. Its job is to
keep working when billing is broken, so it imports nothing from ``billing``.
"""
