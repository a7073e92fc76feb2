"""The MT pipeline as plain functions and small classes: admission, routing, queues.

Nothing here touches sockets; time values are passed in.
"""
