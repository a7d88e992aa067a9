"""The topology's stages, one module each: what an agent does with one record.

`streams.topology` declares the topics and tables and binds each stage to them as a Faust agent.
"""

from collections.abc import Awaitable, Callable

import faust

Agent = Callable[[faust.StreamT], Awaitable[None]]
"""What a stage returns: the function `app.agent(topic)` runs over the topic's stream."""
