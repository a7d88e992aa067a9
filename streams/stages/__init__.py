"""The topology's stages, one module each: what an agent does with one record.

`streams.topology` declares the topics and tables and binds each stage to them as a Faust agent.
"""
