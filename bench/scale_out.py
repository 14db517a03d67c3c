"""todo"""
async def run(*a, **k): pass
